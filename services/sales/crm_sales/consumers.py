"""Other services' events the sales service applies (CustomerMerged, CustomerErased…)."""

from __future__ import annotations

from crm_sales.app import SalesApp


def event_consumers(app: SalesApp) -> list:
    """EventConsumer workers."""
    return []
