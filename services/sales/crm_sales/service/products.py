"""Use cases for products, price books and price book entries.

The catalogue has no owner: everyone in sales reads it, admins and sales
managers change it (the access policy's scope is all-or-nothing here).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm_sales.adapters.product_repository import (
    PRICE_BOOK_FILTERS,
    PRODUCT_DEFAULT_ORDER,
    PRODUCT_FILTERS,
    PRODUCT_ORDERABLE,
    ProductRepository,
    product_sort_keys,
)
from crm_sales.domain import products as rules
from crm_sales.domain.products import (
    EntryInput,
    PriceBook,
    PriceBookEntry,
    PriceBookInput,
    Product,
    ProductInput,
)
from crm_shared.aip.etag import check_etag
from crm_shared.aip.fieldmask import resolve_update_mask
from crm_shared.aip.paging import Page, clamp_page_size, parse_order_by, query_fingerprint
from crm_shared.errors import Aborted, AlreadyExists, FailedPrecondition, NotFound, Violations
from crm_shared.ids import new_id
from crm_shared.principal import Principal

PRODUCTS = "products"
PRICE_BOOKS = "price_books"


def product_not_found(name: str) -> NotFound:
    return NotFound(f"{name} not found", reason="PRODUCT_NOT_FOUND", metadata={"resource": name})


def book_not_found(name: str) -> NotFound:
    return NotFound(f"{name} not found", reason="PRICE_BOOK_NOT_FOUND", metadata={"resource": name})


def entry_not_found(name: str) -> NotFound:
    return NotFound(f"{name} not found", reason="PRICE_BOOK_ENTRY_NOT_FOUND", metadata={"resource": name})


def _duplicate_sku(sku: str, existing_id: str) -> AlreadyExists:
    existing = f"products/{existing_id}"
    return AlreadyExists(
        f"a product with SKU {sku!r} already exists: {existing}",
        reason="DUPLICATE_SKU",
        metadata={"existing": existing, "field": "sku"},
    )


# --- products -------------------------------------------------------------------------------------


async def create_product(uow, deps, principal: Principal, data: ProductInput) -> Product:
    deps.policy.grant(principal, PRODUCTS, "create")
    product = rules.new_product(data, product_id=new_id(), now=uow.now)
    repo = ProductRepository(uow.session)
    existing = await repo.product_id_by_sku(product.sku)
    if existing:
        raise _duplicate_sku(product.sku, existing)
    try:
        await repo.add_product(product)
    except IntegrityError:
        raise Aborted(
            f"a product with SKU {product.sku!r} was created at the same moment; retry",
            reason="CONCURRENT_DUPLICATE",
        ) from None
    uow.audit("created", product.name, ["sku", "display_name", "category", "unit", "list_price", "active"])
    return product


async def get_product(session: AsyncSession, deps, principal: Principal, product_id: str) -> Product:
    deps.policy.grant(principal, PRODUCTS, "read")
    product = await ProductRepository(session).get_product(product_id)
    if product is None:
        raise product_not_found(f"products/{product_id}")
    return product


async def list_products(
    session: AsyncSession,
    deps,
    principal: Principal,
    *,
    page_size: int,
    page_token: str,
    filter_text: str,
    order_by: str,
) -> Page:
    deps.policy.grant(principal, PRODUCTS, "read")
    limit = clamp_page_size(page_size)
    order = parse_order_by(order_by, allowed=PRODUCT_ORDERABLE, default=PRODUCT_DEFAULT_ORDER)
    where = PRODUCT_FILTERS.compile(filter_text)
    query = query_fingerprint("products", filter_text.strip(), order.canonical)
    after = deps.page_tokens.decode(page_token, query=query) if page_token else None
    rows = await ProductRepository(session).list_products(
        where=where, sort=product_sort_keys(order.fields), after=after, limit=limit + 1
    )
    page, more = rows[:limit], len(rows) > limit
    token = ""
    if more:
        last = page[-1]
        token = deps.page_tokens.encode([getattr(last, f) for f, _ in order.fields] + [last.id], query=query)
    return Page(page, token)


async def update_product(
    uow, deps, principal: Principal, product_id: str, data: ProductInput, mask: Sequence[str], etag: str
) -> Product:
    fields = resolve_update_mask(mask, writable=rules.PRODUCT_WRITABLE_FIELDS)
    deps.policy.grant(principal, PRODUCTS, "update")
    repo = ProductRepository(uow.session)
    current = await repo.get_product(product_id)
    if current is None:
        raise product_not_found(f"products/{product_id}")
    check_etag(etag, current.id, current.version, resource=current.name)
    updated, changed = rules.update_product(current, data, fields, now=uow.now)
    if not changed:
        return current
    if "sku" in changed:
        existing = await repo.product_id_by_sku(updated.sku, exclude_id=updated.id)
        if existing:
            raise _duplicate_sku(updated.sku, existing)
    await repo.save_product(updated, expected_version=current.version)
    uow.audit("updated", updated.name, changed)
    return updated


async def delete_product(uow, deps, principal: Principal, product_id: str, etag: str) -> None:
    deps.policy.grant(principal, PRODUCTS, "delete")
    repo = ProductRepository(uow.session)
    current = await repo.get_product(product_id)
    if current is None:
        raise product_not_found(f"products/{product_id}")
    check_etag(etag, current.id, current.version, resource=current.name)
    if await repo.product_in_price_books(product_id):
        raise FailedPrecondition(
            f"{current.name} is listed in a price book; remove its entries or deactivate it instead",
            reason="PRODUCT_IN_USE",
            metadata={"resource": current.name},
        )
    await repo.remove_product(product_id)
    uow.audit("deleted", current.name, [])


# --- price books ----------------------------------------------------------------------------------


async def create_price_book(uow, deps, principal: Principal, data: PriceBookInput) -> PriceBook:
    deps.policy.grant(principal, PRICE_BOOKS, "create")
    book = rules.new_price_book(data, book_id=new_id(), now=uow.now)
    repo = ProductRepository(uow.session)
    if book.is_default:
        await repo.clear_default(book.currency, except_id=book.id)
    await repo.add_book(book)
    uow.audit("created", book.name, ["display_name", "currency_code", "active", "is_default"])
    return book


async def get_price_book(session: AsyncSession, deps, principal: Principal, book_id: str) -> PriceBook:
    deps.policy.grant(principal, PRICE_BOOKS, "read")
    book = await ProductRepository(session).get_book(book_id)
    if book is None:
        raise book_not_found(f"priceBooks/{book_id}")
    return book


async def list_price_books(
    session: AsyncSession, deps, principal: Principal, *, page_size: int, page_token: str, filter_text: str
) -> Page:
    deps.policy.grant(principal, PRICE_BOOKS, "read")
    limit = clamp_page_size(page_size)
    where = PRICE_BOOK_FILTERS.compile(filter_text)
    query = query_fingerprint("price_books", filter_text.strip())
    after = deps.page_tokens.decode(page_token, query=query) if page_token else None
    rows = await ProductRepository(session).list_books(where=where, after=after, limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    token = deps.page_tokens.encode([page[-1].create_time, page[-1].id], query=query) if more else ""
    return Page(page, token)


async def update_price_book(
    uow, deps, principal: Principal, book_id: str, data: PriceBookInput, mask: Sequence[str], etag: str
) -> PriceBook:
    fields = resolve_update_mask(
        mask, writable=rules.PRICE_BOOK_WRITABLE_FIELDS, output_only=rules.PRICE_BOOK_OUTPUT_ONLY_FIELDS
    )
    deps.policy.grant(principal, PRICE_BOOKS, "update")
    repo = ProductRepository(uow.session)
    current = await repo.get_book(book_id)
    if current is None:
        raise book_not_found(f"priceBooks/{book_id}")
    check_etag(etag, current.id, current.version, resource=current.name)
    updated, changed = rules.update_price_book(current, data, fields, now=uow.now)
    if not changed:
        return current
    if "is_default" in changed and updated.is_default:
        await repo.clear_default(updated.currency, except_id=updated.id)
    await repo.save_book(updated, expected_version=current.version)
    uow.audit("updated", updated.name, changed)
    return updated


async def delete_price_book(uow, deps, principal: Principal, book_id: str, etag: str) -> None:
    deps.policy.grant(principal, PRICE_BOOKS, "delete")
    repo = ProductRepository(uow.session)
    current = await repo.get_book(book_id)
    if current is None:
        raise book_not_found(f"priceBooks/{book_id}")
    check_etag(etag, current.id, current.version, resource=current.name)
    await repo.remove_book(book_id)
    uow.audit("deleted", current.name, [])


# --- entries --------------------------------------------------------------------------------------


def _duplicate_entry(book_id: str, existing_id: str) -> AlreadyExists:
    existing = f"priceBooks/{book_id}/entries/{existing_id}"
    return AlreadyExists(
        f"the price book already has a price for this product and min_quantity: {existing}",
        reason="DUPLICATE_PRICE_BOOK_ENTRY",
        metadata={"existing": existing},
    )


async def create_entry(uow, deps, principal: Principal, book_id: str, data: EntryInput) -> PriceBookEntry:
    deps.policy.grant(principal, PRICE_BOOKS, "update")
    repo = ProductRepository(uow.session)
    book = await repo.get_book(book_id)
    if book is None:
        raise book_not_found(f"priceBooks/{book_id}")
    violations = Violations()
    if data.product_id and await repo.get_product(data.product_id) is None:
        violations.add("entry.product", f"products/{data.product_id} does not exist")
    entry = rules.new_entry(data, entry_id=new_id(), book=book, now=uow.now, violations=violations)
    existing = await repo.find_entry(book.id, entry.product_id, entry.min_quantity)
    if existing:
        raise _duplicate_entry(book.id, existing)
    await repo.add_entry(entry)
    uow.audit("created", entry.name, ["product", "unit_price", "min_quantity"])
    return entry


async def get_entry(
    session: AsyncSession, deps, principal: Principal, book_id: str, entry_id: str
) -> PriceBookEntry:
    deps.policy.grant(principal, PRICE_BOOKS, "read")
    entry = await ProductRepository(session).get_entry(book_id, entry_id)
    if entry is None:
        raise entry_not_found(f"priceBooks/{book_id}/entries/{entry_id}")
    return entry


async def list_entries(
    session: AsyncSession, deps, principal: Principal, book_id: str, *, page_size: int, page_token: str
) -> Page:
    deps.policy.grant(principal, PRICE_BOOKS, "read")
    repo = ProductRepository(session)
    if await repo.get_book(book_id) is None:
        raise book_not_found(f"priceBooks/{book_id}")
    limit = clamp_page_size(page_size)
    query = query_fingerprint("price_book_entries", book_id)
    after = deps.page_tokens.decode(page_token, query=query) if page_token else None
    rows = await repo.list_entries(book_id, after=after, limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    token = deps.page_tokens.encode([page[-1].create_time, page[-1].id], query=query) if more else ""
    return Page(page, token)


async def update_entry(
    uow,
    deps,
    principal: Principal,
    book_id: str,
    entry_id: str,
    data: EntryInput,
    mask: Sequence[str],
    etag: str,
) -> PriceBookEntry:
    fields = resolve_update_mask(
        mask, writable=rules.ENTRY_WRITABLE_FIELDS, output_only=rules.ENTRY_OUTPUT_ONLY_FIELDS
    )
    deps.policy.grant(principal, PRICE_BOOKS, "update")
    repo = ProductRepository(uow.session)
    book = await repo.get_book(book_id)
    current = await repo.get_entry(book_id, entry_id) if book else None
    if book is None or current is None:
        raise entry_not_found(f"priceBooks/{book_id}/entries/{entry_id}")
    check_etag(etag, current.id, current.version, resource=current.name)
    updated, changed = rules.update_entry(current, data, fields, book=book, now=uow.now)
    if not changed:
        return current
    if "min_quantity" in changed:
        existing = await repo.find_entry(
            book.id, updated.product_id, updated.min_quantity, exclude_id=updated.id
        )
        if existing:
            raise _duplicate_entry(book.id, existing)
    await repo.save_entry(updated, expected_version=current.version)
    uow.audit("updated", updated.name, changed)
    return updated


async def delete_entry(uow, deps, principal: Principal, book_id: str, entry_id: str, etag: str) -> None:
    deps.policy.grant(principal, PRICE_BOOKS, "update")
    repo = ProductRepository(uow.session)
    current = await repo.get_entry(book_id, entry_id)
    if current is None:
        raise entry_not_found(f"priceBooks/{book_id}/entries/{entry_id}")
    check_etag(etag, current.id, current.version, resource=current.name)
    await repo.remove_entry(entry_id)
    uow.audit("deleted", current.name, [])
