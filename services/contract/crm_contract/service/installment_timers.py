"""PaymentDue reminders and PaymentOverdue of installments (durable timers)."""

from __future__ import annotations


def timer_handlers(app) -> dict:
    return {}
