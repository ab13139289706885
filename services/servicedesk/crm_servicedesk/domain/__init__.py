"""Entities, value objects and rules of the servicedesk (no I/O, no SQL, no gRPC)."""
