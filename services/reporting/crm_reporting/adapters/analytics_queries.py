"""Reads and writes of the analytics read model; every write is idempotent (keys, upserts).

The customer population (owner, team, lifecycle, create time) is read from the customer
area's `report_customers` table and the confirmed payments from the contract area's
`report_payments` (both read only; written by crm_reporting.service.customer_projection and
contract_projection).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from crm_reporting.adapters.analytics_tables import analytics_activity, analytics_lifecycle, customer_scores
from crm_reporting.adapters.contract_queries import CONFIRMED
from crm_reporting.adapters.contract_tables import report_payments
from crm_reporting.adapters.customer_tables import report_customers
from crm_reporting.adapters.projection_tables import dialect_insert
from crm_shared.aip.paging import SortKey, keyset_after, keyset_order

PAYMENT_KIND = "payment"


@dataclass(frozen=True)
class CustomerInfo:
    customer: str
    owner: str
    team: str
    lifecycle_stage: str
    create_time: datetime | None


@dataclass(frozen=True)
class ScoreRow:
    customer: str
    owner: str
    team: str
    abc_class: int
    rfm_segment: str
    recency_score: int
    frequency_score: int
    monetary_score: int
    health_score: int
    churn_risk: int
    factors: list[dict[str, Any]]
    compute_time: datetime

    @property
    def id(self) -> str:  # keyset tie-breaker for ListRequest.page
        return self.customer


def _score(row) -> ScoreRow:
    values = dict(row)
    values["factors"] = list(values["factors"] or [])
    return ScoreRow(**values)


# --- activity and lifecycle ------------------------------------------------------------------------


async def record_activity(
    session, *, key: str, customer: str, time: datetime, kind: str, currency: str = ""
) -> None:
    await session.execute(
        dialect_insert(session, analytics_activity)
        .values(key=key, customer=customer, time=time, kind=kind, currency=currency)
        .on_conflict_do_nothing(index_elements=["key"])
    )


async def record_stage(session, customer: str, time: datetime, stage: str) -> None:
    await session.execute(
        dialect_insert(session, analytics_lifecycle)
        .values(customer=customer, time=time, stage=stage)
        .on_conflict_do_nothing(index_elements=["customer", "time"])
    )


async def activity_stats(session, customer: str, now: datetime) -> tuple[datetime | None, int, int]:
    """(last activity time up to now, activities in (now-30d, now], in (now-90d, now-30d])."""
    a = analytics_activity.c
    last_30 = now - timedelta(days=30)
    last_90 = now - timedelta(days=90)
    previous = sa.and_(a.time > last_90, a.time <= last_30)
    row = (
        await session.execute(
            sa.select(
                sa.func.max(a.time),
                sa.func.coalesce(sa.func.sum(sa.case((a.time > last_30, 1), else_=0)), 0),
                sa.func.coalesce(sa.func.sum(sa.case((previous, 1), else_=0)), 0),
            ).where(a.customer == customer, a.time <= now)
        )
    ).one()
    return row[0], int(row[1]), int(row[2])


async def payment_currencies(session) -> list[str]:
    a = analytics_activity.c
    rows = await session.execute(
        sa.select(a.currency).where(a.kind == PAYMENT_KIND, a.currency != "").distinct().order_by(a.currency)
    )
    return [r[0] for r in rows]


@dataclass(frozen=True)
class PaymentTotals:
    """Confirmed (not voided) payments of one customer in one currency, every payment known."""

    count: int
    total_minor: int
    last_day: date | None


def _day(value) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])  # SQLite aggregates over a DATE column


async def payment_totals(session, customer: str | None = None) -> dict[str, dict[str, PaymentTotals]]:
    """customer -> currency -> confirmed payments (one customer, indexed; or everybody: one query)."""
    p = report_payments.c
    stmt = (
        sa.select(
            p.customer, p.currency, sa.func.count(), sa.func.sum(p.amount_minor), sa.func.max(p.received_date)
        )
        .where(p.status == CONFIRMED, p.customer != "")
        .group_by(p.customer, p.currency)
    )
    if customer is not None:
        stmt = stmt.where(p.customer == customer)
    result: dict[str, dict[str, PaymentTotals]] = {}
    for who, currency, count, total, last in await session.execute(stmt):
        result.setdefault(who, {})[currency] = PaymentTotals(int(count), int(total or 0), _day(last))
    return result


async def lifecycle_history(
    session, customers: Iterable[str] | None = None
) -> dict[str, list[tuple[datetime, str]]]:
    t = analytics_lifecycle.c
    stmt = sa.select(t.customer, t.time, t.stage).order_by(t.customer, t.time)
    if customers is not None:
        stmt = stmt.where(t.customer.in_(list(customers)))
    history: dict[str, list[tuple[datetime, str]]] = {}
    for customer, time, stage in await session.execute(stmt):
        history.setdefault(customer, []).append((time, stage))
    return history


# --- customers ----------------------------------------------------------------------------------------


def _customer_filter():
    c = report_customers.c
    return sa.and_(c.deleted.is_(False), c.merged_into == "")


async def customer_info(session, customer: str) -> CustomerInfo | None:
    c = report_customers.c
    row = (
        await session.execute(
            sa.select(c.customer, c.owner, c.team, c.lifecycle_stage, c.create_time).where(
                c.customer == customer, _customer_filter()
            )
        )
    ).first()
    return None if row is None else CustomerInfo(*row)


async def customer_state(session, customer: str) -> tuple[CustomerInfo | None, bool]:
    """(the live customer or None, whether it was deleted or merged away) in one query."""
    c = report_customers.c
    row = (
        await session.execute(
            sa.select(
                c.customer, c.owner, c.team, c.lifecycle_stage, c.create_time, c.deleted, c.merged_into
            ).where(c.customer == customer)
        )
    ).first()
    if row is None:
        return None, False
    if row[5] or row[6]:
        return None, True
    return CustomerInfo(*row[:5]), False


async def customers(session, predicate=None) -> dict[str, CustomerInfo]:
    """Every live customer (optionally within a data-scope predicate over owner/team)."""
    c = report_customers.c
    stmt = sa.select(c.customer, c.owner, c.team, c.lifecycle_stage, c.create_time).where(_customer_filter())
    if predicate is not None:
        stmt = stmt.where(predicate)
    return {row[0]: CustomerInfo(*row) for row in await session.execute(stmt)}


async def removed_customers(session, customers: Iterable[str] | None = None) -> set[str]:
    """Customers deleted or merged away (never scored)."""
    c = report_customers.c
    stmt = sa.select(c.customer).where(sa.not_(_customer_filter()))
    if customers is not None:
        stmt = stmt.where(c.customer.in_(list(customers)))
    return set((await session.execute(stmt)).scalars())


def customer_scope_columns():
    return report_customers.c.owner, report_customers.c.team


# --- scores -----------------------------------------------------------------------------------------


async def get_score(session, customer: str) -> ScoreRow | None:
    row = (
        (await session.execute(sa.select(customer_scores).where(customer_scores.c.customer == customer)))
        .mappings()
        .first()
    )
    return None if row is None else _score(row)


async def delete_scores(session, customers: Iterable[str]) -> None:
    names = sorted(customers)
    for start in range(0, len(names), 500):
        chunk = names[start : start + 500]
        await session.execute(sa.delete(customer_scores).where(customer_scores.c.customer.in_(chunk)))


async def update_ranks(session, customer: str, values: dict[str, Any]) -> None:
    """The population-wide part of one score (abc class and RFM), nothing else."""
    await session.execute(
        sa.update(customer_scores).where(customer_scores.c.customer == customer).values(**values)
    )


async def all_scores(session) -> dict[str, ScoreRow]:
    rows = (await session.execute(sa.select(customer_scores))).mappings().all()
    return {row["customer"]: _score(row) for row in rows}


async def save_score(session, values: dict[str, Any]) -> None:
    insert = dialect_insert(session, customer_scores).values(**values)
    await session.execute(
        insert.on_conflict_do_update(
            index_elements=["customer"], set_={k: v for k, v in values.items() if k != "customer"}
        )
    )


async def set_owner(session, customer: str, owner: str, team: str) -> None:
    await session.execute(
        sa.update(customer_scores)
        .where(customer_scores.c.customer == customer)
        .values(owner=owner, team=team)
    )


async def delete_score(session, customer: str) -> None:
    await session.execute(sa.delete(customer_scores).where(customer_scores.c.customer == customer))


def scope_columns():
    return customer_scores.c.owner, customer_scores.c.team


def sort_keys(fields: Sequence[tuple[str, bool]]) -> list[SortKey]:
    keys = [SortKey(customer_scores.c[name], desc) for name, desc in fields]
    return [*keys, SortKey(customer_scores.c.customer, False)]


async def list_scores(
    session, *, predicate, where, sort: Sequence[SortKey], after: Sequence[Any] | None, limit: int
) -> list[ScoreRow]:
    stmt = sa.select(customer_scores).where(predicate)
    if where is not None:
        stmt = stmt.where(where)
    if after is not None:
        stmt = stmt.where(keyset_after(sort, after))
    stmt = stmt.order_by(*keyset_order(sort)).limit(limit)
    return [_score(row) for row in (await session.execute(stmt)).mappings().all()]


async def scores_in_scope(session, predicate) -> list[ScoreRow]:
    stmt = sa.select(customer_scores).where(predicate).order_by(customer_scores.c.customer)
    return [_score(row) for row in (await session.execute(stmt)).mappings().all()]
