"""Receivables aging in SQL: outstanding amounts per group and currency, bucketed by days past due.

Buckets compare due dates with bound dates (as_of - 30 …), which behaves the same on SQLite
and PostgreSQL. Data scope and filters are predicates on the contract row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contract.adapters.contract_tables import contracts
from crm_contract.adapters.payment_tables import installments
from crm_contract.domain.payments import AGING_BUCKETS, AgingBucket
from crm_shared.access import ScopeGrant
from crm_shared.access.sql import scope_predicate
from crm_shared.aip.filtering import FilterField, FilterSchema

RECEIVABLE_FILTERS = FilterSchema(
    {
        "owner": FilterField.string(contracts.c.owner),
        "team": FilterField.string(contracts.c.team),
        "customer": FilterField.string(contracts.c.customer),
        "currency_code": FilterField.string(contracts.c.currency),
    }
)

GROUP_COLUMNS = {
    "owner": contracts.c.owner,
    "team": contracts.c.team,
    "customer": contracts.c.customer,
    "contract": sa.literal("contracts/") + contracts.c.id,
}


@dataclass(frozen=True)
class AgingRow:
    key: str
    currency: str
    buckets: dict[AgingBucket, int]
    open_installments: int
    overdue_installments: int


async def aging_rows(
    session: AsyncSession,
    grant: ScopeGrant,
    *,
    group_by: str,
    as_of: date,
    where: sa.ColumnElement[bool] | None,
    statuses: list[str],
) -> list[AgingRow]:
    key = GROUP_COLUMNS[group_by].label("key")
    base = [
        contracts.c.status.in_(statuses),
        scope_predicate(grant, owner=contracts.c.owner, team=contracts.c.team),
    ]
    if where is not None:
        base.append(where)
    outstanding = installments.c.amount - installments.c.paid_amount
    due = installments.c.due_date

    def bucket_sum(first: int, last: int | None):
        condition = due <= as_of - timedelta(days=first)
        if last is not None:
            condition = sa.and_(condition, due >= as_of - timedelta(days=last))
        return sa.func.coalesce(sa.func.sum(sa.case((condition, outstanding), else_=0)), 0)

    planned = (
        sa.select(
            key,
            contracts.c.currency,
            sa.func.coalesce(sa.func.sum(sa.case((due >= as_of, outstanding), else_=0)), 0),
            *[bucket_sum(first, last) for _, first, last in AGING_BUCKETS],
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(sa.case((due < as_of, 1), else_=0)), 0),
        )
        .select_from(installments.join(contracts, contracts.c.id == installments.c.contract_id))
        .where(*base, installments.c.paid_amount < installments.c.amount)
        .group_by(key, contracts.c.currency)
    )
    rows: list[AgingRow] = []
    for row in (await session.execute(planned)).all():
        amounts = [int(v) for v in row[2:7]]
        rows.append(
            AgingRow(
                key=row[0],
                currency=row[1],
                buckets=dict(
                    zip([AgingBucket.CURRENT, *(b for b, _, _ in AGING_BUCKETS)], amounts, strict=True)
                ),
                open_installments=int(row[7]),
                overdue_installments=int(row[8]),
            )
        )
    # A contract without a plan: its whole outstanding amount is current.
    has_plan = sa.exists().where(installments.c.contract_id == contracts.c.id)
    unplanned = (
        sa.select(key, contracts.c.currency, sa.func.sum(contracts.c.amount - contracts.c.received))
        .where(*base, ~has_plan, contracts.c.amount > contracts.c.received)
        .group_by(key, contracts.c.currency)
    )
    for row in (await session.execute(unplanned)).all():
        rows.append(
            AgingRow(
                key=row[0],
                currency=row[1],
                buckets={AgingBucket.CURRENT: int(row[2])},
                open_installments=0,
                overdue_installments=0,
            )
        )
    return rows
