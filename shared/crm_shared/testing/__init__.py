"""Test support shared by every service's tests: real NATS, real databases, real tokens."""
