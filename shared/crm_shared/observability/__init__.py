"""Metrics, traces and logs: configured once here, used by every service."""
