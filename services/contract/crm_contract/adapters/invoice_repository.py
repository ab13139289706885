"""Invoices and their links to installments/payments in the database; data scope in every query."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contract.adapters.contract_repository import next_document_number
from crm_contract.adapters.payment_repository import contract_id_filter, date_filter
from crm_contract.adapters.payment_tables import invoice_links, invoices
from crm_contract.domain.invoices import Invoice, InvoiceStatus
from crm_shared.access import ScopeGrant
from crm_shared.access.sql import scope_predicate
from crm_shared.aip.filtering import FilterField, FilterSchema
from crm_shared.aip.paging import SortKey, keyset_after, keyset_order
from crm_shared.errors import Aborted

INVOICE_NUMBER_KIND = "invoice"
INSTALLMENT_LINK = "installment"
PAYMENT_LINK = "payment"

INVOICE_FILTERS = FilterSchema(
    {
        "contract": contract_id_filter(invoices.c.contract_id),
        "customer": FilterField.string(invoices.c.customer),
        "status": FilterField.enum(
            invoices.c.status, {f"INVOICE_STATUS_{s.name}": s.value for s in InvoiceStatus}
        ),
        "number": FilterField.string(invoices.c.number),
        "issued_date": date_filter(invoices.c.issued_date),
        "owner": FilterField.string(invoices.c.owner),
        "team": FilterField.string(invoices.c.team),
    }
)
INVOICE_SORT = [SortKey(invoices.c.create_time, True), SortKey(invoices.c.id, True)]


def invoice_values(i: Invoice) -> dict[str, Any]:
    return {
        "id": i.id,
        "number": i.number,
        "contract_id": i.contract_id,
        "customer": i.customer,
        "owner": i.owner,
        "team": i.team,
        "currency": i.currency,
        "amount": i.amount,
        "issued_date": i.issued_date,
        "status": i.status.value,
        "note": i.note,
        "void_reason": i.void_reason,
        "create_time": i.create_time,
        "update_time": i.update_time,
        "row_version": i.row_version,
    }


def invoice_from_row(row: Any, links: list[tuple[str, str]]) -> Invoice:
    return Invoice(
        id=row["id"],
        number=row["number"],
        contract_id=row["contract_id"],
        customer=row["customer"],
        owner=row["owner"],
        team=row["team"],
        currency=row["currency"],
        amount=int(row["amount"]),
        status=InvoiceStatus(row["status"]),
        create_time=row["create_time"],
        update_time=row["update_time"],
        issued_date=row["issued_date"],
        installment_ids=[target for kind, target in links if kind == INSTALLMENT_LINK],
        payment_ids=[target for kind, target in links if kind == PAYMENT_LINK],
        note=row["note"],
        void_reason=row["void_reason"],
        row_version=row["row_version"],
    )


class InvoiceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @staticmethod
    def scope(grant: ScopeGrant) -> sa.ColumnElement[bool]:
        return scope_predicate(grant, owner=invoices.c.owner, team=invoices.c.team)

    async def next_number(self) -> str:
        return f"INV-{await next_document_number(self.session, INVOICE_NUMBER_KIND):06d}"

    async def number_taken(self, number: str) -> bool:
        found = await self.session.scalar(sa.select(invoices.c.id).where(invoices.c.number == number))
        return found is not None

    async def _links(self, invoice_ids: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
        found: dict[str, list[tuple[str, str]]] = {i: [] for i in invoice_ids}
        if invoice_ids:
            rows = await self.session.execute(
                sa.select(invoice_links).where(invoice_links.c.invoice_id.in_(list(invoice_ids)))
            )
            for row in rows.mappings().all():
                found[row["invoice_id"]].append((row["target_kind"], row["target_id"]))
        return found

    async def _hydrate(self, rows) -> list[Invoice]:
        links = await self._links([row["id"] for row in rows])
        return [invoice_from_row(row, links[row["id"]]) for row in rows]

    async def get(self, invoice_id: str, grant: ScopeGrant | None = None) -> Invoice | None:
        query = sa.select(invoices).where(invoices.c.id == invoice_id)
        if grant is not None:
            query = query.where(self.scope(grant))
        rows = (await self.session.execute(query)).mappings().all()
        found = await self._hydrate(rows)
        return found[0] if found else None

    async def list(
        self, grant: ScopeGrant, *, where, after: Sequence[Any] | None, limit: int
    ) -> list[Invoice]:
        query = sa.select(invoices).where(self.scope(grant))
        if where is not None:
            query = query.where(where)
        if after is not None:
            query = query.where(keyset_after(INVOICE_SORT, after))
        query = query.order_by(*keyset_order(INVOICE_SORT)).limit(limit)
        return await self._hydrate((await self.session.execute(query)).mappings().all())

    async def of_contract(self, contract_id: str, statuses: Sequence[InvoiceStatus]) -> list[Invoice]:
        query = sa.select(invoices).where(
            invoices.c.contract_id == contract_id, invoices.c.status.in_([s.value for s in statuses])
        )
        return await self._hydrate((await self.session.execute(query)).mappings().all())

    async def invoiced_total(self, contract_id: str) -> int:
        value = await self.session.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(invoices.c.amount), 0)).where(
                invoices.c.contract_id == contract_id, invoices.c.status != InvoiceStatus.VOID.value
            )
        )
        return int(value or 0)

    async def add(self, invoice: Invoice) -> None:
        await self.session.execute(sa.insert(invoices).values(invoice_values(invoice)))
        links = [
            {"invoice_id": invoice.id, "target_kind": INSTALLMENT_LINK, "target_id": i}
            for i in invoice.installment_ids
        ]
        links += [
            {"invoice_id": invoice.id, "target_kind": PAYMENT_LINK, "target_id": p}
            for p in invoice.payment_ids
        ]
        if links:
            await self.session.execute(sa.insert(invoice_links), links)

    async def save(self, invoice: Invoice, *, expected_row_version: int) -> None:
        values = invoice_values(invoice)
        for column in ("id", "number", "contract_id", "create_time"):
            del values[column]
        result = await self.session.execute(
            sa.update(invoices)
            .where(invoices.c.id == invoice.id, invoices.c.row_version == expected_row_version)
            .values(values)
        )
        if result.rowcount != 1:
            raise Aborted(
                f"{invoice.name} was changed concurrently; read it again and retry",
                reason="CONCURRENT_UPDATE",
            )
