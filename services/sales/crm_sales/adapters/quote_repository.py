"""Quotes, quote versions, orders and document numbers in the database; data scope in every query."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from crm_sales.adapters.quote_tables import document_counters, orders, quote_versions, quotes
from crm_sales.domain.pricing import LineAmounts, Totals
from crm_sales.domain.quotes import FulfilmentState, Line, Order, OrderStatus, Quote, QuoteStatus
from crm_shared.access import ScopeGrant
from crm_shared.access.sql import scope_predicate
from crm_shared.aip.filtering import FilterField, FilterSchema
from crm_shared.aip.paging import SortKey, keyset_after, keyset_order
from crm_shared.errors import Aborted

QUOTE_STATUS_FILTER_VALUES = {f"QUOTE_STATUS_{s.name}": s.value for s in QuoteStatus}
ORDER_STATUS_FILTER_VALUES = {f"ORDER_STATUS_{s.name}": s.value for s in OrderStatus}
FULFILMENT_FILTER_VALUES = {f"FULFILMENT_STATE_{s.name}": s.value for s in FulfilmentState}

QUOTE_ORDERABLE = ("create_time", "update_time")
ORDER_ORDERABLE = ("create_time", "update_time")
DEFAULT_ORDER = "create_time desc"


def _resource_id(prefix: str, column: sa.ColumnElement):
    """Filter on a stored id by its resource name: `price_book = "priceBooks/…"`."""

    def convert(value: str, quoted: bool) -> str:
        return value.removeprefix(prefix)

    return FilterField.custom("= !=", lambda op, v: column == v if op == "=" else column != v, convert)


QUOTE_FILTERS = FilterSchema(
    {
        "status": FilterField.enum(quotes.c.status, QUOTE_STATUS_FILTER_VALUES),
        "owner": FilterField.string(quotes.c.owner),
        "team": FilterField.string(quotes.c.team),
        "customer": FilterField.string(quotes.c.customer),
        "opportunity": FilterField.string(quotes.c.opportunity),
        "number": FilterField.string(quotes.c.number),
        "currency_code": FilterField.string(quotes.c.currency),
        "price_book": _resource_id("priceBooks/", quotes.c.price_book_id),
        "create_time": FilterField.timestamp(quotes.c.create_time),
        "update_time": FilterField.timestamp(quotes.c.update_time),
        "valid_until": FilterField.timestamp(quotes.c.valid_until),
    }
)

ORDER_FILTERS = FilterSchema(
    {
        "status": FilterField.enum(orders.c.status, ORDER_STATUS_FILTER_VALUES),
        "fulfilment_state": FilterField.enum(orders.c.fulfilment_state, FULFILMENT_FILTER_VALUES),
        "owner": FilterField.string(orders.c.owner),
        "team": FilterField.string(orders.c.team),
        "customer": FilterField.string(orders.c.customer),
        "opportunity": FilterField.string(orders.c.opportunity),
        "quote": _resource_id("quotes/", orders.c.quote_id),
        "number": FilterField.string(orders.c.number),
        "create_time": FilterField.timestamp(orders.c.create_time),
        "update_time": FilterField.timestamp(orders.c.update_time),
    }
)


def sort_keys(table: sa.Table, fields: tuple[tuple[str, bool], ...]) -> list[SortKey]:
    keys = [SortKey(table.c[name], descending) for name, descending in fields]
    return [*keys, SortKey(table.c.id, fields[-1][1] if fields else False)]


# --- JSON (lines, snapshots) ------------------------------------------------------------------------


def line_to_json(line: Line) -> dict[str, Any]:
    a = line.amounts
    return {
        "product_id": line.product_id,
        "sku": line.sku,
        "description": line.description,
        "quantity": line.quantity,
        "unit_price": line.unit_price,
        "discount_percent_bp": line.discount_percent_bp,
        "discount_amount": line.discount_amount,
        "tax_rate_bp": line.tax_rate_bp,
        "amounts": [a.gross, a.discount, a.net, a.tax, a.total],
    }


def line_from_json(data: dict[str, Any]) -> Line:
    return Line(
        product_id=data["product_id"],
        sku=data["sku"],
        description=data["description"],
        quantity=int(data["quantity"]),
        unit_price=int(data["unit_price"]),
        discount_percent_bp=int(data["discount_percent_bp"]),
        discount_amount=int(data["discount_amount"]),
        tax_rate_bp=int(data["tax_rate_bp"]),
        amounts=LineAmounts(*(int(v) for v in data["amounts"])),
    )


def _totals_values(totals: Totals) -> dict[str, int]:
    return {
        "subtotal": totals.subtotal,
        "discount_total": totals.discount_total,
        "tax_total": totals.tax_total,
        "grand_total": totals.grand_total,
    }


def _totals(row: Any) -> Totals:
    return Totals(row["subtotal"], row["discount_total"], row["tax_total"], row["grand_total"])


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def quote_values(q: Quote) -> dict[str, Any]:
    return {
        "id": q.id,
        "number": q.number,
        "customer": q.customer,
        "opportunity": q.opportunity,
        "currency": q.currency,
        "price_book_id": q.price_book_id,
        "title": q.title,
        "notes": q.notes,
        "lines": [line_to_json(line) for line in q.lines],
        **_totals_values(q.totals),
        "version": q.version,
        "status": q.status.value,
        "valid_until": q.valid_until,
        "owner": q.owner,
        "team": q.team,
        "order_id": q.order_id,
        "reject_reason": q.reject_reason,
        "send_time": q.send_time,
        "decision_time": q.decision_time,
        "create_time": q.create_time,
        "update_time": q.update_time,
        "row_version": q.row_version,
    }


def quote_from_values(row: Any) -> Quote:
    return Quote(
        id=row["id"],
        number=row["number"],
        customer=row["customer"],
        opportunity=row["opportunity"],
        currency=row["currency"],
        price_book_id=row["price_book_id"],
        title=row["title"],
        notes=row["notes"],
        lines=[line_from_json(item) for item in row["lines"] or []],
        totals=_totals(row),
        version=row["version"],
        status=QuoteStatus(row["status"]),
        valid_until=row["valid_until"],
        owner=row["owner"],
        team=row["team"],
        order_id=row["order_id"],
        reject_reason=row["reject_reason"],
        send_time=row["send_time"],
        decision_time=row["decision_time"],
        create_time=row["create_time"],
        update_time=row["update_time"],
        row_version=row["row_version"],
    )


_SNAPSHOT_TIMES = ("valid_until", "send_time", "decision_time", "create_time", "update_time")


def quote_snapshot(q: Quote) -> dict[str, Any]:
    values = quote_values(q)
    for name in _SNAPSHOT_TIMES:
        values[name] = _time(values[name])
    return values


def quote_from_snapshot(data: dict[str, Any]) -> Quote:
    values = dict(data)
    for name in _SNAPSHOT_TIMES:
        values[name] = _parse_time(values[name])
    return quote_from_values(values)


def order_values(o: Order) -> dict[str, Any]:
    return {
        "id": o.id,
        "number": o.number,
        "quote_id": o.quote_id or None,
        "customer": o.customer,
        "opportunity": o.opportunity,
        "currency": o.currency,
        "price_book_id": o.price_book_id,
        "title": o.title,
        "lines": [line_to_json(line) for line in o.lines],
        **_totals_values(o.totals),
        "status": o.status.value,
        "fulfilment_state": o.fulfilment_state.value,
        "owner": o.owner,
        "team": o.team,
        "cancel_reason": o.cancel_reason,
        "create_time": o.create_time,
        "update_time": o.update_time,
        "row_version": o.row_version,
    }


def order_from_row(row: Any) -> Order:
    return Order(
        id=row["id"],
        number=row["number"],
        quote_id=row["quote_id"] or "",
        customer=row["customer"],
        opportunity=row["opportunity"],
        currency=row["currency"],
        price_book_id=row["price_book_id"],
        title=row["title"],
        lines=[line_from_json(item) for item in row["lines"] or []],
        totals=_totals(row),
        status=OrderStatus(row["status"]),
        fulfilment_state=FulfilmentState(row["fulfilment_state"]),
        owner=row["owner"],
        team=row["team"],
        cancel_reason=row["cancel_reason"],
        create_time=row["create_time"],
        update_time=row["update_time"],
        row_version=row["row_version"],
    )


class QuoteRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- numbers -------------------------------------------------------------------------------

    async def next_number(self, kind: str) -> int:
        """The next value of a per-kind counter, inside the caller's transaction (gap-free on commit)."""
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(document_counters).values(kind=kind, last_value=1)
        statement = statement.on_conflict_do_update(
            index_elements=["kind"], set_={"last_value": document_counters.c.last_value + 1}
        ).returning(document_counters.c.last_value)
        return int((await self.session.execute(statement)).scalar_one())

    # --- quotes --------------------------------------------------------------------------------

    @staticmethod
    def quote_scope(grant: ScopeGrant) -> sa.ColumnElement[bool]:
        return scope_predicate(grant, owner=quotes.c.owner, team=quotes.c.team)

    async def get_quote(
        self, quote_id: str, grant: ScopeGrant | None = None, *, lock: bool = False
    ) -> Quote | None:
        query = sa.select(quotes).where(quotes.c.id == quote_id)
        if grant is not None:
            query = query.where(self.quote_scope(grant))
        if lock and self.session.get_bind().dialect.name == "postgresql":
            # Serializes racing transitions (AcceptQuote twice): the second waits, then sees the result.
            query = query.with_for_update()
        row = (await self.session.execute(query)).mappings().first()
        return None if row is None else quote_from_values(row)

    async def list_quotes(
        self, grant: ScopeGrant, *, where, sort: Sequence[SortKey], after: Sequence[Any] | None, limit: int
    ) -> list[Quote]:
        query = sa.select(quotes).where(self.quote_scope(grant))
        if where is not None:
            query = query.where(where)
        if after is not None:
            query = query.where(keyset_after(sort, after))
        query = query.order_by(*keyset_order(sort)).limit(limit)
        return [quote_from_values(row) for row in (await self.session.execute(query)).mappings().all()]

    async def add_quote(self, quote: Quote) -> None:
        await self.session.execute(sa.insert(quotes).values(quote_values(quote)))

    async def save_quote(self, quote: Quote, *, expected_row_version: int) -> None:
        values = quote_values(quote)
        del values["id"], values["create_time"], values["number"]
        result = await self.session.execute(
            sa.update(quotes)
            .where(quotes.c.id == quote.id, quotes.c.row_version == expected_row_version)
            .values(values)
        )
        if result.rowcount != 1:
            raise Aborted(
                f"{quote.name} was changed concurrently; read it again and retry", reason="CONCURRENT_UPDATE"
            )

    async def remove_quote(self, quote_id: str) -> None:
        await self.session.execute(sa.delete(quote_versions).where(quote_versions.c.quote_id == quote_id))
        await self.session.execute(sa.delete(quotes).where(quotes.c.id == quote_id))

    async def archive_version(self, quote: Quote, *, now: datetime) -> None:
        await self.session.execute(
            sa.insert(quote_versions).values(
                quote_id=quote.id, version=quote.version, snapshot=quote_snapshot(quote), archive_time=now
            )
        )

    async def versions(self, quote_id: str) -> list[Quote]:
        rows = (
            await self.session.execute(
                sa.select(quote_versions.c.snapshot)
                .where(quote_versions.c.quote_id == quote_id)
                .order_by(quote_versions.c.version)
            )
        ).scalars()
        return [quote_from_snapshot(snapshot) for snapshot in rows]

    # --- orders --------------------------------------------------------------------------------

    @staticmethod
    def order_scope(grant: ScopeGrant) -> sa.ColumnElement[bool]:
        return scope_predicate(grant, owner=orders.c.owner, team=orders.c.team)

    async def get_order(self, order_id: str, grant: ScopeGrant | None = None) -> Order | None:
        query = sa.select(orders).where(orders.c.id == order_id)
        if grant is not None:
            query = query.where(self.order_scope(grant))
        row = (await self.session.execute(query)).mappings().first()
        return None if row is None else order_from_row(row)

    async def order_for_quote(self, quote_id: str) -> Order | None:
        row = (
            (await self.session.execute(sa.select(orders).where(orders.c.quote_id == quote_id)))
            .mappings()
            .first()
        )
        return None if row is None else order_from_row(row)

    async def list_orders(
        self, grant: ScopeGrant, *, where, sort: Sequence[SortKey], after: Sequence[Any] | None, limit: int
    ) -> list[Order]:
        query = sa.select(orders).where(self.order_scope(grant))
        if where is not None:
            query = query.where(where)
        if after is not None:
            query = query.where(keyset_after(sort, after))
        query = query.order_by(*keyset_order(sort)).limit(limit)
        return [order_from_row(row) for row in (await self.session.execute(query)).mappings().all()]

    async def add_order(self, order: Order) -> None:
        await self.session.execute(sa.insert(orders).values(order_values(order)))

    async def save_order(self, order: Order, *, expected_row_version: int) -> None:
        values = order_values(order)
        del values["id"], values["create_time"], values["number"], values["quote_id"]
        result = await self.session.execute(
            sa.update(orders)
            .where(orders.c.id == order.id, orders.c.row_version == expected_row_version)
            .values(values)
        )
        if result.rowcount != 1:
            raise Aborted(
                f"{order.name} was changed concurrently; read it again and retry", reason="CONCURRENT_UPDATE"
            )
