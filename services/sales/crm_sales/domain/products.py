"""Products, price books and their entries: entities and the rules for writing them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from crm_sales.domain.pricing import MAX_AMOUNT_MINOR
from crm_shared.errors import Violations


@dataclass
class Product:
    id: str
    sku: str
    display_name: str
    create_time: datetime
    update_time: datetime
    category: str = ""
    unit: str = ""
    list_price_currency: str = ""
    list_price: int = 0
    active: bool = True
    description: str = ""
    version: int = 1

    @property
    def name(self) -> str:
        return f"products/{self.id}"


@dataclass
class PriceBook:
    id: str
    display_name: str
    currency: str
    create_time: datetime
    update_time: datetime
    active: bool = True
    is_default: bool = False
    description: str = ""
    version: int = 1

    @property
    def name(self) -> str:
        return f"priceBooks/{self.id}"


@dataclass
class PriceBookEntry:
    id: str
    price_book_id: str
    product_id: str
    unit_price: int
    min_quantity: int
    create_time: datetime
    update_time: datetime
    version: int = 1
    currency: str = ""  # the book's (entries have no currency of their own)

    @property
    def name(self) -> str:
        return f"priceBooks/{self.price_book_id}/entries/{self.id}"


@dataclass(frozen=True)
class ProductInput:
    sku: str = ""
    display_name: str = ""
    category: str = ""
    unit: str = ""
    list_price_currency: str = ""
    list_price: int | None = None  # None: no list price given
    active: bool | None = None  # None: not given (proto3 optional)
    description: str = ""


@dataclass(frozen=True)
class PriceBookInput:
    display_name: str = ""
    currency: str = ""
    active: bool | None = None
    is_default: bool = False
    description: str = ""


@dataclass(frozen=True)
class EntryInput:
    product_id: str = ""
    unit_price: int | None = None
    unit_price_currency: str = ""
    min_quantity: int | None = None


PRODUCT_WRITABLE_FIELDS = frozenset(
    {"sku", "display_name", "category", "unit", "list_price", "active", "description"}
)
PRICE_BOOK_WRITABLE_FIELDS = frozenset({"display_name", "active", "is_default", "description"})
PRICE_BOOK_OUTPUT_ONLY_FIELDS = frozenset({"name", "currency_code", "create_time", "update_time", "etag"})
ENTRY_WRITABLE_FIELDS = frozenset({"unit_price", "min_quantity"})
ENTRY_OUTPUT_ONLY_FIELDS = frozenset({"name", "product", "create_time", "update_time", "etag"})


def _check_product(values: dict[str, Any], violations: Violations) -> None:
    if "sku" in values and not values["sku"]:
        violations.add("product.sku", "is required")
    if "display_name" in values and not values["display_name"]:
        violations.add("product.display_name", "is required")
    if "list_price" in values and values["list_price"] > MAX_AMOUNT_MINOR:
        violations.add("product.list_price.amount_minor", f"must be at most {MAX_AMOUNT_MINOR}")


def _product_values(data: ProductInput, fields: frozenset[str], violations: Violations) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in ("sku", "display_name", "category", "unit"):
        if name in fields:
            values[name] = getattr(data, name).strip()
    if "description" in fields:
        values["description"] = data.description
    if "active" in fields:
        values["active"] = True if data.active is None else data.active
    if "list_price" in fields:
        if data.list_price is None:
            values["list_price_currency"], values["list_price"] = "", 0
        else:
            if not data.list_price_currency:
                violations.add("product.list_price.currency_code", "is required with an amount")
            values["list_price_currency"], values["list_price"] = data.list_price_currency, data.list_price
    _check_product(values, violations)
    return values


def new_product(data: ProductInput, *, product_id: str, now: datetime) -> Product:
    violations = Violations()
    values = _product_values(data, PRODUCT_WRITABLE_FIELDS, violations)
    violations.raise_if_any("the product has invalid fields")
    return Product(id=product_id, create_time=now, update_time=now, **values)


def update_product(
    current: Product, data: ProductInput, fields: frozenset[str], *, now: datetime
) -> tuple[Product, list[str]]:
    violations = Violations()
    values = _product_values(data, fields, violations)
    violations.raise_if_any("the product has invalid fields")
    changed = [name for name, value in values.items() if getattr(current, name) != value]
    if not changed:
        return current, []
    updated = replace(current, **values, update_time=now, version=current.version + 1)
    api = {"list_price_currency": "list_price"}
    return updated, sorted({api.get(name, name) for name in changed})


def new_price_book(data: PriceBookInput, *, book_id: str, now: datetime) -> PriceBook:
    violations = Violations()
    if not data.display_name.strip():
        violations.add("price_book.display_name", "is required")
    if not data.currency:
        violations.add("price_book.currency_code", "is required")
    violations.raise_if_any("the price book has invalid fields")
    return PriceBook(
        id=book_id,
        display_name=data.display_name.strip(),
        currency=data.currency,
        active=True if data.active is None else data.active,
        is_default=data.is_default,
        description=data.description,
        create_time=now,
        update_time=now,
    )


def update_price_book(
    current: PriceBook, data: PriceBookInput, fields: frozenset[str], *, now: datetime
) -> tuple[PriceBook, list[str]]:
    values: dict[str, Any] = {}
    if "display_name" in fields:
        if not data.display_name.strip():
            raise_required("price_book.display_name")
        values["display_name"] = data.display_name.strip()
    if "active" in fields:
        values["active"] = True if data.active is None else data.active
    for name in ("is_default", "description"):
        if name in fields:
            values[name] = getattr(data, name)
    changed = [name for name, value in values.items() if getattr(current, name) != value]
    if not changed:
        return current, []
    return replace(current, **values, update_time=now, version=current.version + 1), changed


def raise_required(field_path: str) -> None:
    violations = Violations()
    violations.add(field_path, "is required")
    violations.raise_if_any()


def new_entry(
    data: EntryInput, *, entry_id: str, book: PriceBook, now: datetime, violations: Violations
) -> PriceBookEntry:
    if not data.product_id:
        violations.add("entry.product", "is required")
    if data.unit_price is None:
        violations.add("entry.unit_price", "is required")
    elif data.unit_price_currency and data.unit_price_currency != book.currency:
        violations.add(
            "entry.unit_price.currency_code",
            f"currency {data.unit_price_currency} does not match the price book's currency {book.currency}",
        )
    violations.raise_if_any("the price book entry has invalid fields")
    return PriceBookEntry(
        id=entry_id,
        price_book_id=book.id,
        product_id=data.product_id,
        unit_price=data.unit_price or 0,
        min_quantity=data.min_quantity or 1,
        create_time=now,
        update_time=now,
        currency=book.currency,
    )


def update_entry(
    current: PriceBookEntry, data: EntryInput, fields: frozenset[str], *, book: PriceBook, now: datetime
) -> tuple[PriceBookEntry, list[str]]:
    violations = Violations()
    values: dict[str, Any] = {}
    if "unit_price" in fields:
        if data.unit_price is None:
            violations.add("entry.unit_price", "is required")
        elif data.unit_price_currency and data.unit_price_currency != book.currency:
            violations.add(
                "entry.unit_price.currency_code",
                f"currency {data.unit_price_currency} is not the price book's currency {book.currency}",
            )
        else:
            values["unit_price"] = data.unit_price
    if "min_quantity" in fields:
        values["min_quantity"] = data.min_quantity or 1
    violations.raise_if_any("the price book entry has invalid fields")
    changed = [name for name, value in values.items() if getattr(current, name) != value]
    if not changed:
        return current, []
    return replace(current, **values, update_time=now, version=current.version + 1), changed
