"""Installments, payment plans, payments and allocations in the database; data scope in every query."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contract.adapters.contract_repository import next_document_number
from crm_contract.adapters.payment_tables import installments, payment_allocations, payment_plans, payments
from crm_contract.domain.payments import (
    Allocation,
    AllocationRequest,
    Installment,
    InstallmentStatus,
    Payment,
    PaymentMethod,
    PaymentStatus,
)
from crm_shared.access import ScopeGrant
from crm_shared.access.sql import scope_predicate
from crm_shared.aip.filtering import FilterField, FilterSchema, invalid_filter
from crm_shared.aip.paging import SortKey, keyset_after, keyset_order
from crm_shared.errors import Aborted

PAYMENT_NUMBER_KIND = "payment"
PAYMENT_ORDERABLE = ("create_time", "received_date")
DEFAULT_PAYMENT_ORDER = "create_time desc"


def contract_id_filter(column: sa.ColumnElement) -> FilterField:
    """Filter on a stored contract id by its resource name: `contract = "contracts/…"`."""

    def convert(value: str, quoted: bool) -> str:
        return value.removeprefix("contracts/")

    return FilterField.custom("= !=", lambda op, v: column == v if op == "=" else column != v, convert)


def date_filter(column: sa.ColumnElement) -> FilterField:
    def convert(value: str, quoted: bool) -> date:
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise invalid_filter(f"{value!r} is not a date (YYYY-MM-DD)") from None

    def compare(op: str, value: date) -> sa.ColumnElement[bool]:
        return {
            "=": column == value,
            "!=": column != value,
            "<": column < value,
            "<=": column <= value,
            ">": column > value,
            ">=": column >= value,
        }[op]

    return FilterField.custom("= != < <= > >=", compare, convert)


PAYMENT_FILTERS = FilterSchema(
    {
        "contract": contract_id_filter(payments.c.contract_id),
        "customer": FilterField.string(payments.c.customer),
        "status": FilterField.enum(
            payments.c.status, {f"PAYMENT_STATUS_{s.name}": s.value for s in PaymentStatus}
        ),
        "method": FilterField.enum(
            payments.c.method, {f"PAYMENT_METHOD_{m.name}": m.value for m in PaymentMethod}
        ),
        "received_date": date_filter(payments.c.received_date),
        "owner": FilterField.string(payments.c.owner),
        "team": FilterField.string(payments.c.team),
        "create_time": FilterField.timestamp(payments.c.create_time),
    }
)


def installment_filters(today: date) -> FilterSchema:
    """`status` is evaluated against today, as reads show it (OVERDUE before the timer fired)."""
    c = installments.c
    unpaid, past_due = c.paid_amount < c.amount, c.due_date < today
    by_status = {
        InstallmentStatus.PAID: c.paid_amount >= c.amount,
        InstallmentStatus.OVERDUE: sa.and_(unpaid, past_due),
        InstallmentStatus.PARTIALLY_PAID: sa.and_(unpaid, ~past_due, c.paid_amount > 0),
        InstallmentStatus.PENDING: sa.and_(~past_due, c.paid_amount == 0),
    }
    names = {f"INSTALLMENT_STATUS_{s.name}": s for s in InstallmentStatus}

    def status_filter(op: str, status: InstallmentStatus) -> sa.ColumnElement[bool]:
        return by_status[status] if op == "=" else ~by_status[status]

    def status_value(value: str, quoted: bool) -> InstallmentStatus:
        if value not in names:
            raise invalid_filter(f"status must be one of {', '.join(names)}")
        return names[value]

    return FilterSchema(
        {
            "status": FilterField.custom("= !=", status_filter, status_value),
            "due_date": date_filter(c.due_date),
            "owner": FilterField.string(c.owner),
            "team": FilterField.string(c.team),
            "customer": FilterField.string(c.customer),
            "contract": contract_id_filter(c.contract_id),
        }
    )


def sort_keys(table: sa.Table, fields: tuple[tuple[str, bool], ...]) -> list[SortKey]:
    keys = [SortKey(table.c[name], descending) for name, descending in fields]
    return [*keys, SortKey(table.c.id, fields[-1][1] if fields else False)]


# --- rows <-> domain ------------------------------------------------------------------------------------


def installment_values(
    i: Installment, *, customer: str, owner: str, team: str, currency: str
) -> dict[str, Any]:
    return {
        "id": i.id,
        "contract_id": i.contract_id,
        "number": i.number,
        "due_date": i.due_date,
        "currency": currency,
        "amount": i.amount,
        "paid_amount": i.paid_amount,
        "paid_date": i.paid_date,
        "remind_before_days": i.remind_before_days,
        "note": i.note,
        "due_notified": i.due_notified,
        "overdue_notified": i.overdue_notified,
        "customer": customer,
        "owner": owner,
        "team": team,
    }


def installment_from_row(row: Any) -> Installment:
    return Installment(
        id=row["id"],
        contract_id=row["contract_id"],
        number=row["number"],
        due_date=row["due_date"],
        amount=int(row["amount"]),
        remind_before_days=row["remind_before_days"],
        paid_amount=int(row["paid_amount"]),
        paid_date=row["paid_date"],
        note=row["note"],
        due_notified=bool(row["due_notified"]),
        overdue_notified=bool(row["overdue_notified"]),
    )


def payment_values(p: Payment) -> dict[str, Any]:
    return {
        "id": p.id,
        "number": p.number,
        "contract_id": p.contract_id,
        "customer": p.customer,
        "owner": p.owner,
        "team": p.team,
        "currency": p.currency,
        "amount": p.amount,
        "unapplied": p.unapplied,
        "received_date": p.received_date,
        "method": p.method.value,
        "reference": p.reference,
        "note": p.note,
        "status": p.status.value,
        "allow_overpayment": p.allow_overpayment,
        "requested_allocations": [[r.installment_id, r.amount] for r in p.requested],
        "approval": p.approval,
        "recorded_by": p.recorded_by,
        "void_reason": p.void_reason,
        "create_time": p.create_time,
        "update_time": p.update_time,
        "row_version": p.row_version,
    }


def payment_from_row(row: Any, allocations: list[Allocation]) -> Payment:
    return Payment(
        id=row["id"],
        number=row["number"],
        contract_id=row["contract_id"],
        customer=row["customer"],
        owner=row["owner"],
        team=row["team"],
        currency=row["currency"],
        amount=int(row["amount"]),
        received_date=row["received_date"],
        method=PaymentMethod(row["method"]),
        reference=row["reference"],
        note=row["note"],
        status=PaymentStatus(row["status"]),
        allow_overpayment=bool(row["allow_overpayment"]),
        requested=[
            AllocationRequest(installment_id, int(amount), f"payment.allocations[{index}]")
            for index, (installment_id, amount) in enumerate(row["requested_allocations"] or [])
        ],
        allocations=allocations,
        unapplied=int(row["unapplied"]),
        approval=row["approval"],
        recorded_by=row["recorded_by"],
        void_reason=row["void_reason"],
        create_time=row["create_time"],
        update_time=row["update_time"],
        row_version=row["row_version"],
    )


class PaymentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- installments and plans -----------------------------------------------------------------

    @staticmethod
    def installment_scope(grant: ScopeGrant) -> sa.ColumnElement[bool]:
        return scope_predicate(grant, owner=installments.c.owner, team=installments.c.team)

    async def installments_of(self, contract_id: str) -> list[Installment]:
        rows = await self.session.execute(
            sa.select(installments)
            .where(installments.c.contract_id == contract_id)
            .order_by(installments.c.number)
        )
        return [installment_from_row(row) for row in rows.mappings().all()]

    async def installments_by_id(self, ids: Sequence[str]) -> dict[str, Installment]:
        if not ids:
            return {}
        rows = await self.session.execute(sa.select(installments).where(installments.c.id.in_(list(ids))))
        return {row["id"]: installment_from_row(row) for row in rows.mappings().all()}

    async def plan_version(self, contract_id: str) -> tuple[int, datetime] | None:
        row = (
            (
                await self.session.execute(
                    sa.select(payment_plans).where(payment_plans.c.contract_id == contract_id)
                )
            )
            .mappings()
            .first()
        )
        return None if row is None else (row["row_version"], row["update_time"])

    async def replace_plan(
        self,
        contract_id: str,
        plan: Sequence[Installment],
        *,
        scope: dict[str, str],
        now: datetime,
        previous_version: int | None,
    ) -> int:
        """Writes the whole plan (installments not in it are deleted); returns the plan's new version."""
        await self.session.execute(sa.delete(installments).where(installments.c.contract_id == contract_id))
        if plan:
            await self.session.execute(
                sa.insert(installments), [installment_values(i, **scope) for i in plan]
            )
        version = (previous_version or 0) + 1
        if previous_version is None:
            await self.session.execute(
                sa.insert(payment_plans).values(contract_id=contract_id, update_time=now, row_version=version)
            )
        else:
            result = await self.session.execute(
                sa.update(payment_plans)
                .where(
                    payment_plans.c.contract_id == contract_id,
                    payment_plans.c.row_version == previous_version,
                )
                .values(update_time=now, row_version=version)
            )
            if result.rowcount != 1:
                raise Aborted(
                    f"contracts/{contract_id}/paymentPlan was changed concurrently; read it again",
                    reason="CONCURRENT_UPDATE",
                )
        return version

    async def save_installment_progress(self, changed: Sequence[Installment]) -> None:
        """Paid amount/date and notification flags: what payments, voids and timers change."""
        for i in changed:
            await self.session.execute(
                sa.update(installments)
                .where(installments.c.id == i.id)
                .values(
                    paid_amount=i.paid_amount,
                    paid_date=i.paid_date,
                    due_notified=i.due_notified,
                    overdue_notified=i.overdue_notified,
                )
            )

    async def get_installment(self, installment_id: str) -> tuple[Installment, dict[str, str]] | None:
        row = (
            (await self.session.execute(sa.select(installments).where(installments.c.id == installment_id)))
            .mappings()
            .first()
        )
        if row is None:
            return None
        return installment_from_row(row), _scope_of(row)

    async def list_installments(
        self,
        grant: ScopeGrant,
        *,
        contract_id: str | None,
        where,
        after: Sequence[Any] | None,
        limit: int,
    ) -> list[tuple[Installment, dict[str, str]]]:
        sort = [SortKey(installments.c.due_date, False), SortKey(installments.c.id, False)]
        query = sa.select(installments).where(self.installment_scope(grant))
        if contract_id is not None:
            query = query.where(installments.c.contract_id == contract_id)
        if where is not None:
            query = query.where(where)
        if after is not None:
            query = query.where(keyset_after(sort, after))
        query = query.order_by(*keyset_order(sort)).limit(limit)
        rows = (await self.session.execute(query)).mappings().all()
        return [(installment_from_row(row), _scope_of(row)) for row in rows]

    # --- payments --------------------------------------------------------------------------------

    @staticmethod
    def payment_scope(grant: ScopeGrant) -> sa.ColumnElement[bool]:
        return scope_predicate(grant, owner=payments.c.owner, team=payments.c.team)

    async def next_number(self) -> str:
        return f"P-{await next_document_number(self.session, PAYMENT_NUMBER_KIND):06d}"

    async def _allocations(self, payment_ids: Sequence[str]) -> dict[str, list[Allocation]]:
        found: dict[str, list[Allocation]] = {pid: [] for pid in payment_ids}
        if not payment_ids:
            return found
        rows = await self.session.execute(
            sa.select(payment_allocations)
            .where(payment_allocations.c.payment_id.in_(list(payment_ids)))
            .order_by(payment_allocations.c.payment_id, payment_allocations.c.position)
        )
        for row in rows.mappings().all():
            found[row["payment_id"]].append(Allocation(row["installment_id"], int(row["amount"])))
        return found

    async def get_payment(
        self, payment_id: str, grant: ScopeGrant | None = None, *, lock: bool = False
    ) -> Payment | None:
        query = sa.select(payments).where(payments.c.id == payment_id)
        if grant is not None:
            query = query.where(self.payment_scope(grant))
        if lock and self.session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()
        row = (await self.session.execute(query)).mappings().first()
        if row is None:
            return None
        return payment_from_row(row, (await self._allocations([payment_id]))[payment_id])

    async def list_payments(
        self, grant: ScopeGrant, *, where, sort: Sequence[SortKey], after: Sequence[Any] | None, limit: int
    ) -> list[Payment]:
        query = sa.select(payments).where(self.payment_scope(grant))
        if where is not None:
            query = query.where(where)
        if after is not None:
            query = query.where(keyset_after(sort, after))
        query = query.order_by(*keyset_order(sort)).limit(limit)
        rows = (await self.session.execute(query)).mappings().all()
        allocations = await self._allocations([row["id"] for row in rows])
        return [payment_from_row(row, allocations[row["id"]]) for row in rows]

    async def payments_on_contract_without_plan(self, contract_id: str) -> list[Payment]:
        """Confirmed payments with an allocation to the contract as a whole, oldest first."""
        loose = sa.select(payment_allocations.c.payment_id).where(payment_allocations.c.installment_id == "")
        rows = (
            (
                await self.session.execute(
                    sa.select(payments)
                    .where(
                        payments.c.contract_id == contract_id,
                        payments.c.status == PaymentStatus.CONFIRMED.value,
                        payments.c.id.in_(loose),
                    )
                    .order_by(payments.c.create_time, payments.c.id)
                )
            )
            .mappings()
            .all()
        )
        allocations = await self._allocations([row["id"] for row in rows])
        return [payment_from_row(row, allocations[row["id"]]) for row in rows]

    async def add_payment(self, payment: Payment) -> None:
        await self.session.execute(sa.insert(payments).values(payment_values(payment)))
        await self._write_allocations(payment)

    async def _write_allocations(self, payment: Payment) -> None:
        if payment.allocations:
            await self.session.execute(
                sa.insert(payment_allocations),
                [
                    {
                        "payment_id": payment.id,
                        "position": n,
                        "installment_id": a.installment_id,
                        "amount": a.amount,
                    }
                    for n, a in enumerate(payment.allocations)
                ],
            )

    async def save_payment(
        self, payment: Payment, *, expected_row_version: int, allocations_changed: bool
    ) -> None:
        values = payment_values(payment)
        for column in ("id", "number", "create_time", "contract_id"):
            del values[column]
        result = await self.session.execute(
            sa.update(payments)
            .where(payments.c.id == payment.id, payments.c.row_version == expected_row_version)
            .values(values)
        )
        if result.rowcount != 1:
            raise Aborted(
                f"{payment.name} was changed concurrently; read it again and retry",
                reason="CONCURRENT_UPDATE",
            )
        if allocations_changed:
            await self.session.execute(
                sa.delete(payment_allocations).where(payment_allocations.c.payment_id == payment.id)
            )
            await self._write_allocations(payment)

    async def pending_total(self, contract_id: str) -> int:
        value = await self.session.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(payments.c.amount), 0)).where(
                payments.c.contract_id == contract_id,
                payments.c.status == PaymentStatus.PENDING_APPROVAL.value,
            )
        )
        return int(value or 0)


def _scope_of(row: Any) -> dict[str, str]:
    return {
        "customer": row["customer"],
        "owner": row["owner"],
        "team": row["team"],
        "currency": row["currency"],
    }
