"""Use cases for quotes and orders: one function per command or query.

Writes take a unit of work (rows, outbox events, audit records and durable
timers commit together); reads take a session. The caller's data scope goes
into every query, so a quote or order outside it is simply NOT_FOUND.

Expiry: SendQuote schedules a durable timer (kind `sales.quote.expire`, key =
quote id, due at valid_until; crm_sales.timers registers the handler). Until
it has fired, a SENT quote past valid_until already *behaves* as expired:
AcceptQuote/RejectQuote refuse it and reads show EXPIRED (evaluated lazily),
so correctness never depends on the timer worker's latency.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm.common.v1 import money_pb2
from crm.sales.v1 import events_pb2
from crm_sales.adapters.product_repository import ProductRepository
from crm_sales.adapters.quote_repository import (
    DEFAULT_ORDER,
    ORDER_FILTERS,
    ORDER_ORDERABLE,
    QUOTE_FILTERS,
    QUOTE_ORDERABLE,
    QuoteRepository,
    sort_keys,
)
from crm_sales.adapters.quote_tables import orders as orders_table
from crm_sales.adapters.quote_tables import quotes as quotes_table
from crm_sales.domain import quotes as rules
from crm_sales.domain.quotes import Catalog, CatalogProduct, Order, Quote, QuoteInput, QuoteStatus
from crm_shared import timers
from crm_shared.aip.etag import check_etag
from crm_shared.aip.fieldmask import resolve_update_mask
from crm_shared.aip.paging import Page, parse_list_request
from crm_shared.errors import Aborted, FailedPrecondition, NotFound, Violations
from crm_shared.ids import new_id
from crm_shared.principal import Principal

QUOTES = "quotes"
ORDERS = "orders"
EXPIRY_TIMER = "sales.quote.expire"
SUBJECT_QUOTE_ACCEPTED = "crm.sales.quote.accepted"
SUBJECT_ORDER_CREATED = "crm.sales.order.created"


def quote_not_found(name: str) -> NotFound:
    # The same answer whether the quote does not exist or is outside the caller's scope.
    return NotFound(f"{name} not found", reason="QUOTE_NOT_FOUND", metadata={"resource": name})


def order_not_found(name: str) -> NotFound:
    return NotFound(f"{name} not found", reason="ORDER_NOT_FOUND", metadata={"resource": name})


def money(currency: str, amount: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, amount_minor=amount)


# --- catalogue lookups ----------------------------------------------------------------------------


async def load_catalog(
    session: AsyncSession,
    *,
    currency: str,
    price_book_id: str,
    product_ids: Sequence[str],
    prefix: str,
    violations: Violations,
) -> Catalog:
    """The products the lines name and the price book's prices for them (quote's book, else the default)."""
    repo = ProductRepository(session)
    found = await repo.get_products(p for p in product_ids if p)
    products = {
        pid: CatalogProduct(p.sku, p.display_name, p.active, p.list_price_currency, p.list_price)
        for pid, p in found.items()
    }
    book = None
    if price_book_id:
        book = await repo.get_book(price_book_id)
        if book is None:
            violations.add(f"{prefix}.price_book", f"priceBooks/{price_book_id} does not exist")
        elif currency and book.currency != currency:
            violations.add(
                f"{prefix}.price_book",
                f"priceBooks/{price_book_id} is in {book.currency}, not the {prefix}'s currency {currency}",
            )
            book = None
        elif not book.active:
            violations.add(f"{prefix}.price_book", f"priceBooks/{price_book_id} is inactive")
            book = None
    elif currency:
        book = await repo.default_book(currency)
    prices = await repo.book_prices(book.id, products) if book is not None else {}
    return Catalog(products=products, book_prices=prices)


# --- quotes: standard methods ---------------------------------------------------------------------


async def create_quote(uow, deps, principal: Principal, data: QuoteInput) -> Quote:
    grant = deps.policy.grant(principal, QUOTES, "create")
    violations = Violations()
    catalog = await load_catalog(
        uow.session,
        currency=data.currency,
        price_book_id=data.price_book_id,
        product_ids=[line.product_id for line in data.lines],
        prefix="quote",
        violations=violations,
    )
    quote = rules.new_quote(
        data, quote_id=new_id(), number="", now=uow.now, grant=grant, catalog=catalog, violations=violations
    )
    repo = QuoteRepository(uow.session)
    quote.number = f"Q-{await repo.next_number('quote'):06d}"
    await repo.add_quote(quote)
    uow.audit("created", quote.name, ["customer", "currency_code", "lines", "owner", "team"])
    return quote


async def _visible_quote(
    session, deps, principal: Principal, quote_id: str, action: str, *, lock=False
) -> Quote:
    grant = deps.policy.grant(principal, QUOTES, action)
    quote = await QuoteRepository(session).get_quote(quote_id, grant, lock=lock)
    if quote is None:
        raise quote_not_found(f"quotes/{quote_id}")
    return quote


async def get_quote(session: AsyncSession, deps, principal: Principal, quote_id: str) -> Quote:
    return await _visible_quote(session, deps, principal, quote_id, "read")


async def list_quotes(
    session: AsyncSession,
    deps,
    principal: Principal,
    *,
    page_size: int,
    page_token: str,
    filter_text: str,
    order_by: str,
) -> Page:
    grant = deps.policy.grant(principal, QUOTES, "read")
    # A token is bound to its query and caller: not replayable with another filter or by someone else.
    req = parse_list_request(
        deps.page_tokens,
        collection="quotes",
        caller=principal.subject,
        page_size=page_size,
        page_token=page_token,
        filter_text=filter_text,
        filters=QUOTE_FILTERS,
        order_by=order_by,
        orderable=QUOTE_ORDERABLE,
        default_order=DEFAULT_ORDER,
    )
    rows = await QuoteRepository(session).list_quotes(
        grant,
        where=req.where,
        sort=sort_keys(quotes_table, req.order.fields),
        after=req.after,
        limit=req.limit + 1,
    )
    return req.page(rows, deps.page_tokens)


async def update_quote(
    uow, deps, principal: Principal, quote_id: str, data: QuoteInput, mask: Sequence[str], etag: str
) -> Quote:
    fields = resolve_update_mask(
        mask, writable=rules.QUOTE_WRITABLE_FIELDS, output_only=rules.QUOTE_OUTPUT_ONLY_FIELDS
    )
    grant = deps.policy.grant(principal, QUOTES, "update")
    repo = QuoteRepository(uow.session)
    current = await repo.get_quote(quote_id, grant)
    if current is None:
        raise quote_not_found(f"quotes/{quote_id}")
    check_etag(etag, current.id, current.row_version, resource=current.name)
    rules.require_status(current, "update")
    violations = Violations()
    catalog = Catalog()
    if "lines" in fields:
        catalog = await load_catalog(
            uow.session,
            currency=current.currency,
            price_book_id=data.price_book_id if "price_book" in fields else current.price_book_id,
            product_ids=[line.product_id for line in data.lines],
            prefix="quote",
            violations=violations,
        )
    elif "price_book" in fields and data.price_book_id:
        await load_catalog(
            uow.session,
            currency=current.currency,
            price_book_id=data.price_book_id,
            product_ids=[],
            prefix="quote",
            violations=violations,
        )
    updated, changed = rules.update_quote(
        current, data, fields, now=uow.now, grant=grant, catalog=catalog, violations=violations
    )
    if not changed:
        return current
    await repo.save_quote(updated, expected_row_version=current.row_version)
    uow.audit("updated", updated.name, changed)
    return updated


async def delete_quote(uow, deps, principal: Principal, quote_id: str, etag: str) -> None:
    quote = await _visible_quote(uow.session, deps, principal, quote_id, "delete")
    check_etag(etag, quote.id, quote.row_version, resource=quote.name)
    rules.require_status(quote, "delete")
    if quote.version > 1:
        raise FailedPrecondition(
            f"{quote.name} has earlier versions that were sent; it cannot be deleted",
            reason="QUOTE_HAS_VERSIONS",
            metadata={"resource": quote.name},
        )
    await QuoteRepository(uow.session).remove_quote(quote.id)
    uow.audit("deleted", quote.name, [])


# --- quotes: the status machine --------------------------------------------------------------------


async def send_quote(uow, deps, principal: Principal, quote_id: str, etag: str) -> Quote:
    current = await _visible_quote(uow.session, deps, principal, quote_id, "send", lock=True)
    check_etag(etag, current.id, current.row_version, resource=current.name)
    sent = rules.send_quote(current, now=uow.now)
    await QuoteRepository(uow.session).save_quote(sent, expected_row_version=current.row_version)
    await timers.schedule(uow, EXPIRY_TIMER, sent.id, sent.valid_until, {"version": sent.version})
    uow.audit("sent", sent.name, ["status"])
    return sent


async def reject_quote(uow, deps, principal: Principal, quote_id: str, reason: str, etag: str) -> Quote:
    current = await _visible_quote(uow.session, deps, principal, quote_id, "reject", lock=True)
    check_etag(etag, current.id, current.row_version, resource=current.name)
    if current.expired_at(uow.now):
        raise FailedPrecondition(
            f"{current.name} has expired; there is nothing left to reject",
            reason="QUOTE_EXPIRED",
            metadata={"resource": current.name, "status": QuoteStatus.EXPIRED.value},
        )
    rejected = rules.reject_quote(current, now=uow.now, reason=reason)
    await QuoteRepository(uow.session).save_quote(rejected, expected_row_version=current.row_version)
    await timers.cancel(uow, EXPIRY_TIMER, rejected.id)
    uow.audit("rejected", rejected.name, ["status", "reject_reason"])
    return rejected


async def revise_quote(uow, deps, principal: Principal, quote_id: str, etag: str) -> Quote:
    current = await _visible_quote(uow.session, deps, principal, quote_id, "revise", lock=True)
    check_etag(etag, current.id, current.row_version, resource=current.name)
    # A SENT quote past valid_until is archived as what it really was: expired.
    archived = rules.expire_quote(current, now=uow.now) or current
    revised = rules.revise_quote(archived, now=uow.now)
    repo = QuoteRepository(uow.session)
    await repo.archive_version(archived, now=uow.now)
    await repo.save_quote(revised, expected_row_version=current.row_version)
    await timers.cancel(uow, EXPIRY_TIMER, revised.id)
    uow.audit("revised", revised.name, ["version", "status"])
    return revised


async def accept_quote(uow, deps, principal: Principal, quote_id: str, etag: str) -> tuple[Quote, Order]:
    """SENT -> ACCEPTED plus exactly one order, in this transaction; a repeat returns the same order.

    Races: on PostgreSQL the quote row is locked (SELECT .. FOR UPDATE), so a second
    AcceptQuote waits and then sees ACCEPTED; on SQLite the unit of work is the one
    writer. The unique orders.quote_id is the last line of defence either way.
    """
    current = await _visible_quote(uow.session, deps, principal, quote_id, "accept", lock=True)
    repo = QuoteRepository(uow.session)
    if current.status is QuoteStatus.ACCEPTED:
        existing = await repo.order_for_quote(current.id)
        if existing is not None:
            return current, existing
    check_etag(etag, current.id, current.row_version, resource=current.name)
    order_id = new_id()
    accepted = rules.accept_quote(current, now=uow.now, order_id=order_id)
    order = rules.order_from_quote(
        accepted, order_id=order_id, number=f"SO-{await repo.next_number('order'):06d}", now=uow.now
    )
    await repo.save_quote(accepted, expected_row_version=current.row_version)
    try:
        await repo.add_order(order)
    except IntegrityError:
        raise Aborted(
            f"{current.name} was accepted at the same moment; read it again", reason="CONCURRENT_ACCEPT"
        ) from None
    await timers.cancel(uow, EXPIRY_TIMER, accepted.id)
    uow.emit(
        SUBJECT_QUOTE_ACCEPTED,
        events_pb2.QuoteAccepted(
            quote=accepted.name,
            opportunity=accepted.opportunity,
            customer=accepted.customer,
            total=money(accepted.currency, accepted.totals.grand_total),
            owner=accepted.owner,
            team=accepted.team,
        ),
        resource=accepted.name,
    )
    _emit_order_created(uow, order)
    uow.audit("accepted", accepted.name, ["status", "order"])
    uow.audit("created", order.name, ["quote", "customer", "lines"])
    return accepted, order


def _emit_order_created(uow, order: Order) -> None:
    uow.emit(
        SUBJECT_ORDER_CREATED,
        events_pb2.OrderCreated(
            order=order.name,
            quote=f"quotes/{order.quote_id}" if order.quote_id else "",
            customer=order.customer,
            total=money(order.currency, order.totals.grand_total),
            owner=order.owner,
            team=order.team,
            lines=[
                events_pb2.OrderLineSnapshot(
                    product=f"products/{line.product_id}" if line.product_id else "",
                    sku=line.sku,
                    quantity=line.quantity,
                    amount=money(order.currency, line.amounts.total),
                    net_amount=money(order.currency, line.amounts.net),
                )
                for line in order.lines
            ],
        ),
        resource=order.name,
    )


async def list_quote_versions(
    session: AsyncSession, deps, principal: Principal, quote_id: str
) -> list[Quote]:
    current = await _visible_quote(session, deps, principal, quote_id, "read")
    return [*await QuoteRepository(session).versions(current.id), current]


async def expire_quote(uow, quote_id: str) -> Quote | None:
    """The expiry timer's work: SENT and past valid_until -> EXPIRED; anything else is left alone."""
    repo = QuoteRepository(uow.session)
    current = await repo.get_quote(quote_id, lock=True)
    if current is None:
        return None
    expired = rules.expire_quote(current, now=uow.now)
    if expired is None:
        if current.status is QuoteStatus.SENT and current.valid_until is not None:
            # valid_until moved later (not possible today, but cheap to honour): wait for it.
            await timers.schedule(
                uow, EXPIRY_TIMER, current.id, current.valid_until, {"version": current.version}
            )
        return None
    await repo.save_quote(expired, expected_row_version=current.row_version)
    uow.audit("expired", expired.name, ["status"])
    return expired


# --- orders -----------------------------------------------------------------------------------------


async def create_order(uow, deps, principal: Principal, data: QuoteInput) -> Order:
    grant = deps.policy.grant(principal, ORDERS, "create")
    violations = Violations()
    catalog = await load_catalog(
        uow.session,
        currency=data.currency,
        price_book_id=data.price_book_id,
        product_ids=[line.product_id for line in data.lines],
        prefix="order",
        violations=violations,
    )
    repo = QuoteRepository(uow.session)
    order = rules.new_order(
        data, order_id=new_id(), number="", now=uow.now, grant=grant, catalog=catalog, violations=violations
    )
    order.number = f"SO-{await repo.next_number('order'):06d}"
    await repo.add_order(order)
    _emit_order_created(uow, order)
    uow.audit("created", order.name, ["customer", "currency_code", "lines", "owner", "team"])
    return order


async def _visible_order(session, deps, principal: Principal, order_id: str, action: str) -> Order:
    grant = deps.policy.grant(principal, ORDERS, action)
    order = await QuoteRepository(session).get_order(order_id, grant)
    if order is None:
        raise order_not_found(f"orders/{order_id}")
    return order


async def get_order(session: AsyncSession, deps, principal: Principal, order_id: str) -> Order:
    return await _visible_order(session, deps, principal, order_id, "read")


async def list_orders(
    session: AsyncSession,
    deps,
    principal: Principal,
    *,
    page_size: int,
    page_token: str,
    filter_text: str,
    order_by: str,
) -> Page:
    grant = deps.policy.grant(principal, ORDERS, "read")
    req = parse_list_request(
        deps.page_tokens,
        collection="orders",
        caller=principal.subject,
        page_size=page_size,
        page_token=page_token,
        filter_text=filter_text,
        filters=ORDER_FILTERS,
        order_by=order_by,
        orderable=ORDER_ORDERABLE,
        default_order=DEFAULT_ORDER,
    )
    rows = await QuoteRepository(session).list_orders(
        grant,
        where=req.where,
        sort=sort_keys(orders_table, req.order.fields),
        after=req.after,
        limit=req.limit + 1,
    )
    return req.page(rows, deps.page_tokens)


async def change_order(
    uow, deps, principal: Principal, order_id: str, etag: str, action: str, **kwargs
) -> Order:
    current = await _visible_order(uow.session, deps, principal, order_id, "update")
    check_etag(etag, current.id, current.row_version, resource=current.name)
    change = {"confirm": rules.confirm_order, "fulfill": rules.fulfill_order, "cancel": rules.cancel_order}[
        action
    ]
    changed = change(current, now=uow.now, **kwargs)
    await QuoteRepository(uow.session).save_order(changed, expected_row_version=current.row_version)
    past = {"confirm": "confirmed", "fulfill": "fulfilled", "cancel": "cancelled"}[action]
    uow.audit(past, changed.name, ["status", "fulfilment_state"])
    return changed
