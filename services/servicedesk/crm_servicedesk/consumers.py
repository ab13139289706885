"""Other services' events the servicedesk applies (CustomerMerged, CustomerErased)."""

from __future__ import annotations

from crm_servicedesk.app import ServicedeskApp


def event_consumers(app: ServicedeskApp) -> list:
    """EventConsumer workers."""
    return []
