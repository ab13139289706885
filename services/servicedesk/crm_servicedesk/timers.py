"""Durable timer kinds of the servicedesk and their handlers (SLA, snapshot retries, auto-close)."""

from __future__ import annotations

from crm_servicedesk.app import ServicedeskApp


def timer_handlers(app: ServicedeskApp) -> dict:
    """kind -> async handler(uow, timer)."""
    from crm_servicedesk.service import sla_timers, ticket_timers

    return {**ticket_timers.timer_handlers(app), **sla_timers.timer_handlers(app)}
