"""Durable timer kinds of the sales service and their handlers (task reminders, quote expiry…)."""

from __future__ import annotations

from crm_sales.app import SalesApp


def timer_handlers(app: SalesApp) -> dict:
    """kind -> async handler(uow, timer)."""
    return {}
