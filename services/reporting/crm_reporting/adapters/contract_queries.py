"""Read queries over the contract area's read models (see contract_tables for what is stored).

An installment's paid amount as of a day is the sum of the allocations of the payments whose
latest status is CONFIRMED and that were received by that day, plus its share of money received
while its contract had no plan (spread oldest due first, domain.finance.spread_unallocated).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from crm_reporting.adapters.contract_tables import (
    report_contracts as contracts,
)
from crm_reporting.adapters.contract_tables import (
    report_installments as installments,
)
from crm_reporting.adapters.contract_tables import (
    report_payment_allocations as allocations,
)
from crm_reporting.adapters.contract_tables import (
    report_payments as payments,
)
from crm_reporting.domain.finance import RECEIVABLE_STATUSES, InstallmentDue, spread_unallocated

CONFIRMED = "CONFIRMED"


@dataclass(frozen=True)
class InstallmentPosition:
    """One installment of a receivable contract with what was paid on it by a day."""

    name: str
    contract: str
    customer: str
    owner: str
    team: str
    currency: str
    due_date: date
    amount: int
    paid: int

    @property
    def outstanding(self) -> int:
        return max(0, self.amount - self.paid)


@dataclass(frozen=True)
class UnplannedPosition:
    """A receivable contract without a payment plan: amount minus what was received on it."""

    contract: str
    customer: str
    owner: str
    team: str
    currency: str
    amount: int
    received: int

    @property
    def outstanding(self) -> int:
        return max(0, self.amount - self.received)


def _confirmed_allocations(paid_until: date | None):
    conditions = [payments.c.status == CONFIRMED]
    if paid_until is not None:
        conditions.append(payments.c.received_date <= paid_until)
    return allocations.join(payments, payments.c.name == allocations.c.payment), conditions


def receivable_contracts_where(predicate: sa.ColumnElement[bool] | None) -> list[sa.ColumnElement[bool]]:
    where = [contracts.c.status.in_(RECEIVABLE_STATUSES), contracts.c.deleted.is_(False)]
    if predicate is not None:
        where.append(predicate)
    return where


async def installment_positions(
    session: AsyncSession,
    predicate: sa.ColumnElement[bool] | None,
    *,
    paid_until: date | None,
) -> list[InstallmentPosition]:
    """Every installment of the receivable contracts matching `predicate` (on report_contracts'
    columns), with its paid amount by `paid_until` (None: everything confirmed)."""
    joined, paid_conditions = _confirmed_allocations(paid_until)
    paid = (
        sa.select(
            allocations.c.installment.label("installment"),
            sa.func.sum(allocations.c.amount_minor).label("paid"),
        )
        .select_from(joined)
        .where(*paid_conditions, allocations.c.installment != "")
        .group_by(allocations.c.installment)
        .subquery()
    )
    rows = (
        await session.execute(
            sa.select(
                installments.c.name,
                installments.c.contract,
                contracts.c.customer,
                contracts.c.owner,
                contracts.c.team,
                installments.c.currency,
                installments.c.due_date,
                installments.c.amount_minor,
                sa.func.coalesce(paid.c.paid, 0),
            )
            .select_from(
                installments.join(contracts, contracts.c.name == installments.c.contract).outerjoin(
                    paid, paid.c.installment == installments.c.name
                )
            )
            .where(*receivable_contracts_where(predicate))
            .order_by(installments.c.contract, installments.c.due_date, installments.c.name)
        )
    ).all()
    loose = await _unallocated_by_contract(session, {r[1] for r in rows}, paid_until)
    by_contract: dict[str, list] = defaultdict(list)
    for row in rows:
        by_contract[row[1]].append(row)
    positions: list[InstallmentPosition] = []
    for contract, items in by_contract.items():
        paid_by_key = spread_unallocated(
            [InstallmentDue(key=r[0], due_date=r[6], amount=int(r[7]), paid=int(r[8])) for r in items],
            loose.get(contract, 0),
        )
        positions.extend(
            InstallmentPosition(
                name=r[0],
                contract=r[1],
                customer=r[2],
                owner=r[3],
                team=r[4],
                currency=r[5],
                due_date=r[6],
                amount=int(r[7]),
                paid=paid_by_key[r[0]],
            )
            for r in items
        )
    return positions


async def _unallocated_by_contract(
    session: AsyncSession, contract_names: set[str], paid_until: date | None
) -> dict[str, int]:
    """Confirmed money applied to the contract itself (no installment), per contract."""
    if not contract_names:
        return {}
    joined, conditions = _confirmed_allocations(paid_until)
    result: dict[str, int] = {}
    names = sorted(contract_names)
    for start in range(0, len(names), 500):
        chunk = names[start : start + 500]
        rows = await session.execute(
            sa.select(allocations.c.contract, sa.func.sum(allocations.c.amount_minor))
            .select_from(joined)
            .where(*conditions, allocations.c.installment == "", allocations.c.contract.in_(chunk))
            .group_by(allocations.c.contract)
        )
        result.update({r[0]: int(r[1]) for r in rows})
    return result


async def unplanned_positions(
    session: AsyncSession,
    predicate: sa.ColumnElement[bool] | None,
    *,
    paid_until: date | None,
) -> list[UnplannedPosition]:
    """Receivable contracts without installments, with the confirmed money received on them."""
    has_plan = sa.exists().where(installments.c.contract == contracts.c.name)
    joined, conditions = _confirmed_allocations(paid_until)
    received = (
        sa.select(
            allocations.c.contract.label("contract"),
            sa.func.sum(allocations.c.amount_minor).label("received"),
        )
        .select_from(joined)
        .where(*conditions)
        .group_by(allocations.c.contract)
        .subquery()
    )
    rows = await session.execute(
        sa.select(
            contracts.c.name,
            contracts.c.customer,
            contracts.c.owner,
            contracts.c.team,
            contracts.c.currency,
            contracts.c.amount_minor,
            sa.func.coalesce(received.c.received, 0),
        )
        .select_from(contracts.outerjoin(received, received.c.contract == contracts.c.name))
        .where(*receivable_contracts_where(predicate), ~has_plan)
        .order_by(contracts.c.name)
    )
    return [
        UnplannedPosition(
            contract=r[0],
            customer=r[1],
            owner=r[2],
            team=r[3],
            currency=r[4],
            amount=int(r[5]),
            received=int(r[6]),
        )
        for r in rows
    ]


async def confirmed_payments_by_day(
    session: AsyncSession,
    predicate: sa.ColumnElement[bool] | None,
    *,
    received_from: date | None,
    received_before: date | None,
    group_column: sa.ColumnElement | None = None,
) -> list[tuple[str, date, str, int]]:
    """(group key, received date, currency, sum) of the payments currently CONFIRMED."""
    key = group_column if group_column is not None else sa.literal("")
    where = [payments.c.status == CONFIRMED]
    if predicate is not None:
        where.append(predicate)
    if received_from is not None:
        where.append(payments.c.received_date >= received_from)
    if received_before is not None:
        where.append(payments.c.received_date < received_before)
    rows = await session.execute(
        sa.select(key, payments.c.received_date, payments.c.currency, sa.func.sum(payments.c.amount_minor))
        .where(*where)
        .group_by(key, payments.c.received_date, payments.c.currency)
    )
    return [(r[0] or "", r[1], r[2], int(r[3])) for r in rows]
