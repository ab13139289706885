"""Durable timer kinds of the customer service and their handlers (registered with the scheduler)."""

from __future__ import annotations

from crm_customer.app import CustomerApp


def timer_handlers(app: CustomerApp) -> dict:
    """kind -> async handler(uow, timer); filled in as pool, follow-up and lifecycle timers land."""
    return {}
