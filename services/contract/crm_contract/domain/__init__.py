"""Entities, value objects and rules of the contract service (no I/O, no SQL, no gRPC)."""
