"""Locust load tests for the CRM: personas over gRPC, seeding, `make loadtest` and the capacity search.

  python -m crm_load run --users 500 --duration 60s [--write]    one headless Locust run
  python -m crm_load capacity --steps 250,500,1000 [--write]      step load, CPU per request
  python -m crm_load gateway --users 200                           same load via Envoy and direct
  python -m crm_load seed --target HOST:PORT --users N             seed a running stack only

loadtests/locustfile.py holds the Locust entry point (gevent-initialised grpc first); the
personas live in crm_load.personas. docs/loadtest.md explains how to run and read it.
"""
