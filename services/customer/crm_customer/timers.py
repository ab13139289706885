"""Durable timer kinds of the customer service and their handlers (registered with the scheduler).

Handlers never trust the timer's payload for decisions: they re-read the customer and
re-apply the rules at fire time. A timer whose deadline has moved (a follow-up landed, the
tier changed, the pool's rules changed) re-schedules itself; one that no longer applies
(customer released, locked, deleted) does nothing.

    pool.reclaim          key customer id   reclaim into the pool (OwnershipChanged RECLAIMED)
    pool.warn             key customer id   ReclaimWarning to the owner
    follow_up.reminder    key customer id   FollowUpDue to the owner at next_follow_up_time
    lifecycle.inactivity  key customer id   active/loyal → at_risk after INACTIVITY_AT_RISK
    pool.rules_changed    key pool id       re-derive governed customers' deadlines, in batches
"""

from __future__ import annotations

import logging
from dataclasses import replace

import sqlalchemy as sa

from crm.customer.v1 import events_pb2 as customer_events_pb
from crm.customer.v1 import pool_events_pb2 as events_pb
from crm_customer.adapters import pool_published, published
from crm_customer.adapters.pool_repository import OwnershipRepository, PoolRepository
from crm_customer.adapters.repository import CustomerRepository
from crm_customer.adapters.tables import customers
from crm_customer.app import CustomerApp
from crm_customer.domain import lifecycle
from crm_customer.domain.follow_ups import latest_activity
from crm_customer.domain.model import CustomerStatus
from crm_customer.domain.pools import reclaim_deadline, warning_time
from crm_customer.service import deadlines, pools
from crm_shared.errors import Aborted
from crm_shared.timers import Timer, schedule

log = logging.getLogger(__name__)

RULES_BATCH = 200


class CustomerTimers:
    """The handlers, bound to the service's codec (customers are decrypted on load)."""

    def __init__(self, app: CustomerApp) -> None:
        self.codec = app.deps.codec

    async def load(self, uow, customer_id: str):
        return await CustomerRepository(uow.session, self.codec).get(customer_id)

    async def reclaim(self, uow, timer: Timer) -> None:
        customer = await self.load(uow, timer.key)
        if customer is None:
            return
        pool = await deadlines.governing_pool(uow, customer)
        deadline = reclaim_deadline(customer, pool.rules) if pool else None
        if deadline is None:
            await deadlines.refresh_timers(uow, customer, pool, lookup_pool=False)
            return
        if deadline.at > uow.now:  # activity moved it: wait for the new deadline
            await deadlines.refresh_timers(uow, customer, pool, lookup_pool=False)
            return
        await pools.reclaim(uow, customer, pool, deadline.clause)

    async def warn(self, uow, timer: Timer) -> None:
        customer = await self.load(uow, timer.key)
        if customer is None:
            return
        pool = await deadlines.governing_pool(uow, customer)
        deadline = reclaim_deadline(customer, pool.rules) if pool else None
        if deadline is None or pool is None:
            return
        warn_at = warning_time(deadline.at, pool.rules, now=uow.now)
        if warn_at is None:
            return  # the deadline itself has passed: the reclaim timer takes over
        if warn_at > uow.now:
            await schedule(uow, deadlines.WARN, customer.id, warn_at, {**timer.payload})
            return
        uow.emit(
            pool_published.SUBJECT_RECLAIM_WARNING,
            events_pb.ReclaimWarning(
                customer=customer.name,
                owner=customer.owner,
                team=customer.team,
                pool=pool.name,
                reclaim_time=published.timestamp(deadline.at),
            ),
            resource=customer.name,
        )

    async def remind(self, uow, timer: Timer) -> None:
        customer = await self.load(uow, timer.key)
        if customer is None or customer.status is not CustomerStatus.OWNED:
            return
        due = customer.next_follow_up_time
        if due is None:
            return
        if due > uow.now:
            await schedule(uow, deadlines.FOLLOW_UP_REMINDER, customer.id, due, {"owner": customer.owner})
            return
        uow.emit(
            pool_published.SUBJECT_FOLLOW_UP_DUE,
            events_pb.FollowUpDue(
                customer=customer.name, owner=customer.owner, next_follow_up_time=published.timestamp(due)
            ),
            resource=customer.name,
        )

    async def inactivity(self, uow, timer: Timer) -> None:
        customer = await self.load(uow, timer.key)
        if customer is None:
            return
        due = lifecycle.inactivity_deadline(latest_activity(customer))
        if due > uow.now:
            await schedule(uow, deadlines.INACTIVITY, customer.id, due)
            return
        stage = lifecycle.after_inactivity(customer.lifecycle_stage)
        if stage == customer.lifecycle_stage:
            return
        updated = replace(customer, lifecycle_stage=stage, update_time=uow.now, version=customer.version + 1)
        if not await OwnershipRepository(uow.session).move(customer, updated):
            raise Aborted(f"{customer.name} changed while its stage was updated", reason="CONCURRENT_UPDATE")
        uow.emit(
            published.SUBJECT_CUSTOMER_UPDATED,
            customer_events_pb.CustomerUpdated(
                customer=published.customer_snapshot(updated), changed_fields=["lifecycle_stage"]
            ),
            resource=updated.name,
        )
        uow.audit("updated", updated.name, ["lifecycle_stage"])

    async def rules_changed(self, uow, timer: Timer) -> None:
        pool = await PoolRepository(uow.session).get(timer.key)
        if pool is None:
            return
        c = customers.c
        after = timer.payload.get("after", "")
        ids = (
            (
                await uow.session.execute(
                    sa.select(c.id)
                    .where(c.pool_id == pool.id, c.status == CustomerStatus.OWNED.value, c.id > after)
                    .order_by(c.id)
                    .limit(RULES_BATCH)
                )
            )
            .scalars()
            .all()
        )
        for customer_id in ids:
            customer = await self.load(uow, customer_id)
            if customer is not None:
                await deadlines.refresh_timers(uow, customer, pool, lookup_pool=False)
        if len(ids) == RULES_BATCH:  # more to do: the next batch in its own transaction
            await schedule(uow, deadlines.POOL_RULES_CHANGED, pool.id, uow.now, {"after": ids[-1]})


def timer_handlers(app: CustomerApp) -> dict:
    """kind -> async handler(uow, timer)."""
    timers = CustomerTimers(app)
    return {
        deadlines.RECLAIM: timers.reclaim,
        deadlines.WARN: timers.warn,
        deadlines.FOLLOW_UP_REMINDER: timers.remind,
        deadlines.INACTIVITY: timers.inactivity,
        deadlines.POOL_RULES_CHANGED: timers.rules_changed,
    }
