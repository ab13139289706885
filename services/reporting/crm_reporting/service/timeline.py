"""The customer timeline of the 360 view: every area records its facts here.

    await timeline.record(
        uow, key=f"{envelope.id}:opportunity_won", customer=payload.opportunity.customer,
        time=occurred_at(envelope), kind="opportunity_won", resource=envelope.subject,
        summary="won", currency="EUR", amount_minor=120000, actor=envelope.actor.subject,
    )

Idempotent on `key` (a redelivered or replayed event writes nothing twice). `summary` must not
carry free text typed by a person (notes, names): the timeline keeps no personal data, so an
erasure has nothing to scrub here except the entries of the customer (see `erase_customer`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from crm_reporting.adapters.projection_tables import dialect_insert, timeline


@dataclass(frozen=True)
class TimelineEntry:
    key: str
    customer: str
    time: datetime
    kind: str
    resource: str
    summary: str
    currency: str
    amount_minor: int
    actor: str


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def record(
    uow,
    *,
    key: str,
    customer: str,
    time,
    kind: str,
    resource: str,
    summary: str,
    currency: str = "",
    amount_minor: int = 0,
    actor: str = "",
) -> None:
    """Add one entry unless `key` is already there. No-op without a customer."""
    if not customer:
        return
    session = uow.session if hasattr(uow, "session") else uow
    statement = (
        dialect_insert(session, timeline)
        .values(
            key=key[:120],
            customer=customer,
            time=_aware(time),
            kind=kind,
            resource=resource[:200],
            summary=summary[:500],
            currency=currency,
            amount_minor=int(amount_minor),
            actor=actor[:128],
        )
        .on_conflict_do_nothing(index_elements=["key"])
    )
    await session.execute(statement)


async def entries(session, customer: str, *, limit: int = 50) -> list[TimelineEntry]:
    """The customer's entries, newest first."""
    rows = await session.execute(
        sa.select(timeline)
        .where(timeline.c.customer == customer)
        .order_by(timeline.c.time.desc(), timeline.c.key.desc())
        .limit(limit)
    )
    return [TimelineEntry(**dict(r._mapping)) for r in rows]


async def move_customer(session, losers: list[str], survivor: str) -> None:
    """CustomerMerged: the losers' entries now belong to the survivor."""
    if losers:
        await session.execute(
            sa.update(timeline).where(timeline.c.customer.in_(losers)).values(customer=survivor)
        )


async def erase_customer(session, customer: str) -> None:
    """CustomerErased: drop the customer's entries."""
    await session.execute(sa.delete(timeline).where(timeline.c.customer == customer))
