"""Report rules and calculations of the reporting service (no I/O, no SQL, no gRPC)."""
