"""Scores computed by the reporting service (CustomerScored on crm.reporting.customer.scored):
the customer's tier follows the ABC class (A/B/C) and health_score the reporting health score.

Idempotent and order-tolerant: the compute_time of the score applied last is kept (score_time);
a score not newer than it is ignored, so a redelivered or late older score never overwrites a
newer one.

A tier someone set by hand wins: the ABC class only sets the tier while it is unset or was last
set by a score (tier_by_score; Create/UpdateCustomer writing a tier clear it). A tier change is a
customer change like any other: new version (etag), CustomerUpdated, audit. The health score is
system-maintained and output-only, so a health-only change is stored without a new version: a
background score must not turn a user's pending edit into a stale-etag conflict.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import sqlalchemy as sa

from crm.customer.v1 import events_pb2 as events_pb
from crm.reporting.v1 import common_pb2 as reporting_common
from crm.reporting.v1 import events_pb2 as reporting_events
from crm_customer.adapters import published
from crm_customer.adapters.repository import CustomerRepository
from crm_customer.adapters.tables import customers
from crm_customer.domain.model import CustomerStatus, Tier
from crm_customer.service.customers import CustomerDeps
from crm_shared.events.errors import TransientError

log = logging.getLogger(__name__)

TIER_OF_CLASS = {
    reporting_common.ABC_CLASS_A: Tier.A,
    reporting_common.ABC_CLASS_B: Tier.B,
    reporting_common.ABC_CLASS_C: Tier.C,
}


def _customer_id(name: str) -> str | None:
    prefix, _, customer_id = name.partition("/")
    return customer_id if prefix == "customers" and customer_id and "/" not in customer_id else None


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


async def apply_score(uow, deps: CustomerDeps, score: reporting_events.CustomerScored) -> list[str]:
    """Apply one CustomerScored; returns the changed fields (empty when nothing changed)."""
    customer_id = _customer_id(score.customer)
    customer = await CustomerRepository(uow.session, deps.codec).get(customer_id) if customer_id else None
    if customer is None or customer.status in (CustomerStatus.MERGED, CustomerStatus.ERASED):
        log.info("score for %s ignored: no such live customer", score.customer)
        return []
    compute_time = score.compute_time.ToDatetime(tzinfo=UTC) if score.HasField("compute_time") else uow.now
    c = customers.c
    applied = _aware(await uow.session.scalar(sa.select(c.score_time).where(c.id == customer.id)))
    if applied is not None and compute_time <= applied:
        return []
    tier_by_score = bool(await uow.session.scalar(sa.select(c.tier_by_score).where(c.id == customer.id)))
    manual_tier = customer.tier is not None and not tier_by_score
    tier = customer.tier if manual_tier else TIER_OF_CLASS.get(score.abc_class, customer.tier)
    health = max(0, min(100, score.health_score))
    changed = sorted(
        name
        for name, differs in (
            ("tier", tier != customer.tier),
            ("health_score", health != customer.health_score),
        )
        if differs
    )
    if "tier" not in changed:
        # Health only (or nothing): no new version, no event — see the module docstring.
        await uow.session.execute(
            sa.update(customers)
            .where(c.id == customer.id)
            .values(score_time=compute_time, health_score=health)
        )
        return []
    result = await uow.session.execute(
        sa.update(customers)
        .where(c.id == customer.id, c.version == customer.version)
        .values(
            tier=tier.value if tier else None,
            health_score=health,
            score_time=compute_time,
            tier_by_score=True,
            update_time=uow.now,
            version=customer.version + 1,
        )
    )
    if result.rowcount != 1:
        raise TransientError(f"{customer.name} changed concurrently")
    updated = await CustomerRepository(uow.session, deps.codec).get(customer.id)
    uow.emit(
        published.SUBJECT_CUSTOMER_UPDATED,
        events_pb.CustomerUpdated(customer=published.customer_snapshot(updated), changed_fields=changed),
        resource=updated.name,
    )
    uow.audit("updated", updated.name, changed)
    return changed
