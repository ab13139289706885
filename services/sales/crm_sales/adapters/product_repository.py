"""Products, price books and entries in the database."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from crm_sales.adapters.product_tables import price_book_entries, price_books, products
from crm_sales.domain.products import PriceBook, PriceBookEntry, Product
from crm_shared.aip.filtering import FilterField, FilterSchema
from crm_shared.aip.paging import SortKey, keyset_after, keyset_order
from crm_shared.errors import Aborted

PRODUCT_ORDERABLE = ("sku", "create_time", "display_name")
PRODUCT_DEFAULT_ORDER = "sku"

PRODUCT_FILTERS = FilterSchema(
    {
        "sku": FilterField.string(products.c.sku, operators="= != < <= > >="),
        "display_name": FilterField.string(products.c.display_name, operators="= != < <= > >="),
        "category": FilterField.string(products.c.category),
        "unit": FilterField.string(products.c.unit),
        "active": FilterField.boolean(products.c.active),
        "create_time": FilterField.timestamp(products.c.create_time),
        "update_time": FilterField.timestamp(products.c.update_time),
    }
)

PRICE_BOOK_FILTERS = FilterSchema(
    {
        "display_name": FilterField.string(price_books.c.display_name, operators="= != < <= > >="),
        "currency_code": FilterField.string(price_books.c.currency),
        "active": FilterField.boolean(price_books.c.active),
        "is_default": FilterField.boolean(price_books.c.is_default),
        "create_time": FilterField.timestamp(price_books.c.create_time),
    }
)


def product_sort_keys(fields: tuple[tuple[str, bool], ...]) -> list[SortKey]:
    keys = [SortKey(products.c[name], descending) for name, descending in fields]
    return [*keys, SortKey(products.c.id, fields[-1][1] if fields else False)]


async def _save(
    session: AsyncSession, table: sa.Table, entity_id: str, values: dict, expected: int, name: str
):
    result = await session.execute(
        sa.update(table).where(table.c.id == entity_id, table.c.version == expected).values(values)
    )
    if result.rowcount != 1:
        raise Aborted(f"{name} was changed concurrently; read it again and retry", reason="CONCURRENT_UPDATE")


class ProductRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- products ------------------------------------------------------------------------------

    @staticmethod
    def _product_values(p: Product) -> dict[str, Any]:
        return {
            "id": p.id,
            "sku": p.sku,
            "display_name": p.display_name,
            "category": p.category,
            "unit": p.unit,
            "list_price_currency": p.list_price_currency,
            "list_price": p.list_price,
            "active": p.active,
            "description": p.description,
            "create_time": p.create_time,
            "update_time": p.update_time,
            "version": p.version,
        }

    @staticmethod
    def _to_product(row: Any) -> Product:
        return Product(
            id=row.id,
            sku=row.sku,
            display_name=row.display_name,
            category=row.category,
            unit=row.unit,
            list_price_currency=row.list_price_currency,
            list_price=row.list_price,
            active=row.active,
            description=row.description,
            create_time=row.create_time,
            update_time=row.update_time,
            version=row.version,
        )

    async def get_product(self, product_id: str) -> Product | None:
        row = (await self.session.execute(sa.select(products).where(products.c.id == product_id))).first()
        return None if row is None else self._to_product(row)

    async def get_products(self, product_ids: Iterable[str]) -> dict[str, Product]:
        ids = sorted(set(product_ids))
        if not ids:
            return {}
        rows = (await self.session.execute(sa.select(products).where(products.c.id.in_(ids)))).all()
        return {row.id: self._to_product(row) for row in rows}

    async def product_id_by_sku(self, sku: str, *, exclude_id: str = "") -> str | None:
        query = sa.select(products.c.id).where(products.c.sku == sku, products.c.id != exclude_id)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def list_products(
        self, *, where, sort: Sequence[SortKey], after: Sequence[Any] | None, limit: int
    ) -> list[Product]:
        query = sa.select(products)
        if where is not None:
            query = query.where(where)
        if after is not None:
            query = query.where(keyset_after(sort, after))
        query = query.order_by(*keyset_order(sort)).limit(limit)
        return [self._to_product(row) for row in (await self.session.execute(query)).all()]

    async def add_product(self, product: Product) -> None:
        await self.session.execute(sa.insert(products).values(self._product_values(product)))

    async def save_product(self, product: Product, *, expected_version: int) -> None:
        values = self._product_values(product)
        del values["id"], values["create_time"]
        await _save(self.session, products, product.id, values, expected_version, product.name)

    async def product_in_price_books(self, product_id: str) -> bool:
        query = (
            sa.select(price_book_entries.c.id).where(price_book_entries.c.product_id == product_id).limit(1)
        )
        return (await self.session.execute(query)).first() is not None

    async def remove_product(self, product_id: str) -> None:
        await self.session.execute(sa.delete(products).where(products.c.id == product_id))

    # --- price books ---------------------------------------------------------------------------

    @staticmethod
    def _book_values(b: PriceBook) -> dict[str, Any]:
        return {
            "id": b.id,
            "display_name": b.display_name,
            "currency": b.currency,
            "active": b.active,
            "is_default": b.is_default,
            "description": b.description,
            "create_time": b.create_time,
            "update_time": b.update_time,
            "version": b.version,
        }

    @staticmethod
    def _to_book(row: Any) -> PriceBook:
        return PriceBook(
            id=row.id,
            display_name=row.display_name,
            currency=row.currency,
            active=row.active,
            is_default=row.is_default,
            description=row.description,
            create_time=row.create_time,
            update_time=row.update_time,
            version=row.version,
        )

    async def get_book(self, book_id: str) -> PriceBook | None:
        row = (await self.session.execute(sa.select(price_books).where(price_books.c.id == book_id))).first()
        return None if row is None else self._to_book(row)

    async def default_book(self, currency: str) -> PriceBook | None:
        row = (
            await self.session.execute(
                sa.select(price_books)
                .where(
                    price_books.c.currency == currency,
                    price_books.c.is_default.is_(True),
                    price_books.c.active.is_(True),
                )
                .order_by(price_books.c.create_time.desc())
                .limit(1)
            )
        ).first()
        return None if row is None else self._to_book(row)

    async def list_books(self, *, where, after: Sequence[Any] | None, limit: int) -> list[PriceBook]:
        sort = [SortKey(price_books.c.create_time), SortKey(price_books.c.id)]
        query = sa.select(price_books)
        if where is not None:
            query = query.where(where)
        if after is not None:
            query = query.where(keyset_after(sort, after))
        query = query.order_by(*keyset_order(sort)).limit(limit)
        return [self._to_book(row) for row in (await self.session.execute(query)).all()]

    async def clear_default(self, currency: str, *, except_id: str) -> None:
        """Only one default book per currency: unset the others (bumping their etags)."""
        await self.session.execute(
            sa.update(price_books)
            .where(
                price_books.c.currency == currency,
                price_books.c.is_default.is_(True),
                price_books.c.id != except_id,
            )
            .values(is_default=False, version=price_books.c.version + 1)
        )

    async def add_book(self, book: PriceBook) -> None:
        await self.session.execute(sa.insert(price_books).values(self._book_values(book)))

    async def save_book(self, book: PriceBook, *, expected_version: int) -> None:
        values = self._book_values(book)
        del values["id"], values["create_time"]
        await _save(self.session, price_books, book.id, values, expected_version, book.name)

    async def remove_book(self, book_id: str) -> None:
        await self.session.execute(
            sa.delete(price_book_entries).where(price_book_entries.c.price_book_id == book_id)
        )
        await self.session.execute(sa.delete(price_books).where(price_books.c.id == book_id))

    # --- entries -------------------------------------------------------------------------------

    @staticmethod
    def _entry_values(e: PriceBookEntry) -> dict[str, Any]:
        return {
            "id": e.id,
            "price_book_id": e.price_book_id,
            "product_id": e.product_id,
            "unit_price": e.unit_price,
            "min_quantity": e.min_quantity,
            "create_time": e.create_time,
            "update_time": e.update_time,
            "version": e.version,
        }

    @staticmethod
    def _to_entry(row: Any) -> PriceBookEntry:
        return PriceBookEntry(
            id=row.id,
            price_book_id=row.price_book_id,
            product_id=row.product_id,
            unit_price=row.unit_price,
            min_quantity=row.min_quantity,
            create_time=row.create_time,
            update_time=row.update_time,
            version=row.version,
            currency=row.currency,
        )

    @staticmethod
    def _select_entries() -> sa.Select:
        return sa.select(price_book_entries, price_books.c.currency).join(
            price_books, price_books.c.id == price_book_entries.c.price_book_id
        )

    async def get_entry(self, book_id: str, entry_id: str) -> PriceBookEntry | None:
        row = (
            await self.session.execute(
                self._select_entries().where(
                    price_book_entries.c.id == entry_id, price_book_entries.c.price_book_id == book_id
                )
            )
        ).first()
        return None if row is None else self._to_entry(row)

    async def find_entry(
        self, book_id: str, product_id: str, min_quantity: int, *, exclude_id: str = ""
    ) -> str | None:
        query = sa.select(price_book_entries.c.id).where(
            price_book_entries.c.price_book_id == book_id,
            price_book_entries.c.product_id == product_id,
            price_book_entries.c.min_quantity == min_quantity,
            price_book_entries.c.id != exclude_id,
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def list_entries(
        self, book_id: str, *, after: Sequence[Any] | None, limit: int
    ) -> list[PriceBookEntry]:
        sort = [SortKey(price_book_entries.c.create_time), SortKey(price_book_entries.c.id)]
        query = self._select_entries().where(price_book_entries.c.price_book_id == book_id)
        if after is not None:
            query = query.where(keyset_after(sort, after))
        query = query.order_by(*keyset_order(sort)).limit(limit)
        return [self._to_entry(row) for row in (await self.session.execute(query)).all()]

    async def book_prices(self, book_id: str, product_ids: Iterable[str]) -> dict[str, list[tuple[int, int]]]:
        """product id -> [(min_quantity, unit_price)] in the book, for default line prices."""
        ids = sorted(set(product_ids))
        if not ids:
            return {}
        rows = (
            await self.session.execute(
                sa.select(
                    price_book_entries.c.product_id,
                    price_book_entries.c.min_quantity,
                    price_book_entries.c.unit_price,
                ).where(
                    price_book_entries.c.price_book_id == book_id, price_book_entries.c.product_id.in_(ids)
                )
            )
        ).all()
        prices: dict[str, list[tuple[int, int]]] = {}
        for row in rows:
            prices.setdefault(row.product_id, []).append((row.min_quantity, row.unit_price))
        return prices

    async def add_entry(self, entry: PriceBookEntry) -> None:
        await self.session.execute(sa.insert(price_book_entries).values(self._entry_values(entry)))

    async def save_entry(self, entry: PriceBookEntry, *, expected_version: int) -> None:
        values = self._entry_values(entry)
        del values["id"], values["create_time"], values["price_book_id"], values["product_id"]
        await _save(self.session, price_book_entries, entry.id, values, expected_version, entry.name)

    async def remove_entry(self, entry_id: str) -> None:
        await self.session.execute(sa.delete(price_book_entries).where(price_book_entries.c.id == entry_id))
