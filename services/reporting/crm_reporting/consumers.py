"""Durable consumers of every service's stream feeding the read models (placeholder)."""

from __future__ import annotations

from crm_reporting.app import ReportingApp


def event_consumers(app: ReportingApp) -> list:
    """EventConsumer workers."""
    return []
