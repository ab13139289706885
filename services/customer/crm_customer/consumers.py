"""Other services' events the customer service applies (durable JetStream consumers)."""

from __future__ import annotations

from crm_customer.app import CustomerApp


def event_consumers(app: CustomerApp) -> list:
    """EventConsumer workers; filled in as consumed events land (deals from sales and contract…)."""
    return []
