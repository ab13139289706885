"""Contracts and document numbers in the database; data scope applied inside every query."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contract.adapters.contract_tables import contracts, document_counters
from crm_contract.domain.contracts import Contract, ContractStatus, LineItem
from crm_shared.access import ScopeGrant
from crm_shared.access.sql import scope_predicate
from crm_shared.aip.paging import SortKey, keyset_after, keyset_order
from crm_shared.errors import Aborted

CONTRACT_NUMBER_KIND = "contract"


def line_item_to_json(item: LineItem) -> dict[str, Any]:
    return {
        "description": item.description,
        "product": item.product,
        "quantity": item.quantity,
        "unit_price": item.unit_price,
    }


def line_item_from_json(data: dict[str, Any]) -> LineItem:
    return LineItem(
        description=data["description"],
        product=data.get("product", ""),
        quantity=int(data["quantity"]),
        unit_price=int(data["unit_price"]),
    )


def contract_values(c: Contract) -> dict[str, Any]:
    return {
        "id": c.id,
        "number": c.number,
        "customer": c.customer,
        "opportunity": c.opportunity,
        "title": c.title,
        "contract_type": c.contract_type,
        "currency": c.currency,
        "amount": c.amount,
        "line_items": [line_item_to_json(item) for item in c.line_items],
        "signed_date": c.signed_date,
        "start_date": c.start_date,
        "end_date": c.end_date,
        "payment_terms": c.payment_terms,
        "customer_signer": c.customer_signer,
        "company_signer": c.company_signer,
        "owner": c.owner,
        "team": c.team,
        "status": c.status.value,
        "approval_id": c.approval_id,
        "renewal_of": c.renewal_of,
        "renewed_by": c.renewed_by,
        "renewal_notice_days": c.renewal_notice_days,
        "termination_reason": c.termination_reason,
        "attachments": list(c.attachments),
        "notes": c.notes,
        "won_opportunity": c.won_opportunity,
        "received": c.received,
        "credit": c.credit,
        "pending_approval": c.pending_approval,
        "overdue": c.overdue,
        "create_time": c.create_time,
        "update_time": c.update_time,
        "row_version": c.row_version,
    }


def contract_from_row(row: Any) -> Contract:
    return Contract(
        id=row["id"],
        number=row["number"],
        customer=row["customer"],
        opportunity=row["opportunity"],
        title=row["title"],
        contract_type=row["contract_type"],
        currency=row["currency"],
        amount=int(row["amount"]),
        line_items=[line_item_from_json(item) for item in row["line_items"] or []],
        signed_date=row["signed_date"],
        start_date=row["start_date"],
        end_date=row["end_date"],
        payment_terms=row["payment_terms"],
        customer_signer=row["customer_signer"],
        company_signer=row["company_signer"],
        owner=row["owner"],
        team=row["team"],
        status=ContractStatus(row["status"]),
        approval_id=row["approval_id"],
        renewal_of=row["renewal_of"],
        renewed_by=row["renewed_by"],
        renewal_notice_days=row["renewal_notice_days"],
        termination_reason=row["termination_reason"],
        attachments=list(row["attachments"] or []),
        notes=row["notes"],
        won_opportunity=row["won_opportunity"],
        received=int(row["received"]),
        credit=int(row["credit"]),
        pending_approval=int(row["pending_approval"]),
        overdue=int(row["overdue"]),
        create_time=row["create_time"],
        update_time=row["update_time"],
        row_version=row["row_version"],
    )


# The balance belongs to the payment code: a save of the contract's own fields never overwrites it.
_BALANCE_COLUMNS = ("received", "credit", "pending_approval", "overdue")


async def next_document_number(session: AsyncSession, kind: str) -> int:
    """The next value of a per-kind counter, inside the caller's transaction (gap-free on commit)."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = (
        insert(document_counters)
        .values(kind=kind, last_value=1)
        .on_conflict_do_update(
            index_elements=["kind"], set_={"last_value": document_counters.c.last_value + 1}
        )
        .returning(document_counters.c.last_value)
    )
    return int((await session.execute(statement)).scalar_one())


class ContractRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @staticmethod
    def scope(grant: ScopeGrant) -> sa.ColumnElement[bool]:
        return scope_predicate(grant, owner=contracts.c.owner, team=contracts.c.team)

    async def next_number(self) -> str:
        """ "C-000042": unique and gap-free on commit."""
        return f"C-{await next_document_number(self.session, CONTRACT_NUMBER_KIND):06d}"

    async def get(
        self, contract_id: str, grant: ScopeGrant | None = None, lock: bool = False
    ) -> Contract | None:
        query = sa.select(contracts).where(contracts.c.id == contract_id)
        if grant is not None:
            query = query.where(self.scope(grant))
        if lock and self.session.get_bind().dialect.name == "postgresql":
            # Serializes racing changes (a payment and a transition): the second waits, then sees the first.
            query = query.with_for_update()
        row = (await self.session.execute(query)).mappings().first()
        return None if row is None else contract_from_row(row)

    async def by_won_opportunity(self, opportunity: str) -> Contract | None:
        query = sa.select(contracts).where(contracts.c.won_opportunity == opportunity)
        row = (await self.session.execute(query)).mappings().first()
        return None if row is None else contract_from_row(row)

    async def list(
        self,
        grant: ScopeGrant,
        *,
        where: sa.ColumnElement[bool] | None,
        sort: Sequence[SortKey],
        after: Sequence[Any] | None,
        limit: int,
    ) -> list[Contract]:
        query = sa.select(contracts).where(self.scope(grant))
        if where is not None:
            query = query.where(where)
        if after is not None:
            query = query.where(keyset_after(sort, after))
        query = query.order_by(*keyset_order(sort)).limit(limit)
        return [contract_from_row(row) for row in (await self.session.execute(query)).mappings().all()]

    async def add(self, contract: Contract) -> None:
        await self.session.execute(sa.insert(contracts).values(contract_values(contract)))

    async def save(self, contract: Contract, expected_row_version: int) -> None:
        """Writes the contract's own fields (not its balance); Aborted when someone else wrote first."""
        values = contract_values(contract)
        for column in ("id", "number", "create_time", "won_opportunity", *_BALANCE_COLUMNS):
            del values[column]
        result = await self.session.execute(
            sa.update(contracts)
            .where(contracts.c.id == contract.id, contracts.c.row_version == expected_row_version)
            .values(values)
        )
        if result.rowcount != 1:
            raise Aborted(
                f"{contract.name} was changed concurrently; read it again and retry",
                reason="CONCURRENT_UPDATE",
                metadata={"resource": contract.name},
            )

    async def remove(self, contract_id: str) -> None:
        await self.session.execute(sa.delete(contracts).where(contracts.c.id == contract_id))

    async def save_balance(self, contract: Contract) -> None:
        """Writes only the balance columns (the payment code's job, under the contract's row lock).

        Kept apart from `save` so a status change never overwrites a balance recorded meanwhile.
        """
        await self.session.execute(
            sa.update(contracts)
            .where(contracts.c.id == contract.id)
            .values({column: getattr(contract, column) for column in _BALANCE_COLUMNS})
        )
