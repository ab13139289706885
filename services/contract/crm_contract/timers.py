"""Durable timer kinds of the contract service and their handlers (renewal, expiry, payment due/overdue)."""

from __future__ import annotations

from crm_contract.app import ContractApp


def timer_handlers(app: ContractApp) -> dict:
    """kind -> async handler(uow, timer)."""
    from crm_contract.service import installment_timers, renewals

    return {**renewals.timer_handlers(app), **installment_timers.timer_handlers(app)}
