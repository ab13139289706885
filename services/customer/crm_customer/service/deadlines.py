"""Keeping a customer's durable timers in step with its state, in the transaction that changed it.

Every use case that changes what a deadline depends on (ownership, lock, tier, a follow-up,
a deal) calls `refresh_timers`; the timer handlers re-check the rules when they fire, so a
stale timer can never reclaim too early — at worst it re-schedules itself.
"""

from __future__ import annotations

from datetime import datetime

from crm_customer.adapters.pool_repository import OwnershipRepository, PoolRepository
from crm_customer.domain import lifecycle
from crm_customer.domain.follow_ups import latest_activity
from crm_customer.domain.model import Customer, CustomerStatus, LifecycleStage
from crm_customer.domain.pools import Pool, ReclaimDeadline, reclaim_deadline, warning_time
from crm_shared.timers import cancel, pending, schedule

RECLAIM = "pool.reclaim"
WARN = "pool.warn"
FOLLOW_UP_REMINDER = "follow_up.reminder"
INACTIVITY = "lifecycle.inactivity"
POOL_RULES_CHANGED = "pool.rules_changed"


async def governing_pool(uow, customer: Customer) -> Pool | None:
    if not customer.pool_id:
        return None
    return await PoolRepository(uow.session).get(customer.pool_id)


async def refresh_timers(
    uow, customer: Customer, pool: Pool | None = None, *, lookup_pool: bool = True
) -> Customer:
    """(Re)schedule or cancel the customer's reclaim, warning, reminder and inactivity timers.

    Returns the customer with reclaim_time as now scheduled (also written to its row).
    """
    if pool is None and lookup_pool:
        pool = await governing_pool(uow, customer)
    deadline = reclaim_deadline(customer, pool.rules) if pool is not None else None
    await _reclaim_timers(uow, customer, pool, deadline)
    reclaim_time = deadline.at if deadline else None
    if reclaim_time != customer.reclaim_time:
        await OwnershipRepository(uow.session).set_reclaim_time(customer.id, reclaim_time)
        customer.reclaim_time = reclaim_time
    await _reminder_timer(uow, customer)
    await _inactivity_timer(uow, customer)
    return customer


async def _reclaim_timers(
    uow, customer: Customer, pool: Pool | None, deadline: ReclaimDeadline | None
) -> None:
    if deadline is None or pool is None:
        await cancel(uow, RECLAIM, customer.id)
        await cancel(uow, WARN, customer.id)
        return
    payload = {
        "owner": customer.owner,
        "pool": pool.id,
        "clause": deadline.clause,
        "warn_days": pool.rules.warn_days_before,
    }
    current = await pending(uow, RECLAIM, customer.id)
    unchanged = current is not None and current.due_at == deadline.at and current.payload == payload
    await schedule(uow, RECLAIM, customer.id, deadline.at, payload)
    if unchanged:
        return  # same deadline, same owner: its warning is pending or was given already — warn once
    warn_at = warning_time(deadline.at, pool.rules, now=uow.now)
    if warn_at is None:
        await cancel(uow, WARN, customer.id)
    else:
        await schedule(uow, WARN, customer.id, warn_at, {**payload, "reclaim_time": deadline.at.isoformat()})


async def _reminder_timer(uow, customer: Customer) -> None:
    due: datetime | None = customer.next_follow_up_time
    if customer.status is CustomerStatus.OWNED and due is not None:
        await schedule(uow, FOLLOW_UP_REMINDER, customer.id, due, {"owner": customer.owner})
    else:
        await cancel(uow, FOLLOW_UP_REMINDER, customer.id)


async def _inactivity_timer(uow, customer: Customer) -> None:
    if customer.lifecycle_stage in (LifecycleStage.ACTIVE, LifecycleStage.LOYAL):
        await schedule(uow, INACTIVITY, customer.id, lifecycle.inactivity_deadline(latest_activity(customer)))
    else:
        await cancel(uow, INACTIVITY, customer.id)


async def cancel_all(uow, customer_id: str) -> None:
    for kind in (RECLAIM, WARN, FOLLOW_UP_REMINDER, INACTIVITY):
        await cancel(uow, kind, customer_id)
