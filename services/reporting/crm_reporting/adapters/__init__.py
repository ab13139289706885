"""Read-model tables and queries of the reporting service."""
