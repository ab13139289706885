"""Adapters: database tables and repositories, event payloads."""
