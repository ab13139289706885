"""Adapters: database tables and repositories, clients of other services, event payloads."""
