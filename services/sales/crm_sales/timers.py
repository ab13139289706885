"""Durable timer kinds of the sales service and their handlers (task reminders, quote expiry…)."""

from __future__ import annotations

from crm_sales.app import SalesApp


def timer_handlers(app: SalesApp) -> dict:
    """kind -> async handler(uow, timer)."""
    from crm_sales.service.quotes import EXPIRY_TIMER, expire_quote
    from crm_sales.service.tasks import REMINDER_TIMER, fire_reminder

    async def expire_sent_quote(uow, timer) -> None:
        await expire_quote(uow, timer.key)

    async def remind_task(uow, timer) -> None:
        await fire_reminder(uow, timer.key, timer.payload)

    return {EXPIRY_TIMER: expire_sent_quote, REMINDER_TIMER: remind_task}
