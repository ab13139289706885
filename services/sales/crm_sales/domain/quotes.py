"""Quotes and orders: entities, line building (price resolution + arithmetic) and status machines.

Pure functions: the service layer loads the products and price book entries a
request mentions into a `Catalog`, and these rules do the rest. Every input
problem is collected so one INVALID_ARGUMENT names every bad field; an action
the current status does not allow is FAILED_PRECONDITION with a reason.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from crm_sales.domain import pricing
from crm_sales.domain.pricing import LineAmounts, LineInput, Totals
from crm_shared.access import Scope, ScopeGrant
from crm_shared.errors import FailedPrecondition, PermissionDenied, Violations


class QuoteStatus(enum.StrEnum):
    DRAFT = "draft"
    SENT = "sent"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    EXPIRED = "expired"


class OrderStatus(enum.StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    FULFILLED = "fulfilled"
    CANCELLED = "cancelled"


class FulfilmentState(enum.StrEnum):
    UNFULFILLED = "unfulfilled"
    PARTIALLY_FULFILLED = "partially_fulfilled"
    FULFILLED = "fulfilled"


@dataclass(frozen=True)
class Line:
    product_id: str
    sku: str
    description: str
    quantity: int
    unit_price: int
    discount_percent_bp: int
    discount_amount: int
    tax_rate_bp: int
    amounts: LineAmounts


@dataclass
class Quote:
    id: str
    number: str
    customer: str
    currency: str
    owner: str
    team: str
    create_time: datetime
    update_time: datetime
    opportunity: str = ""
    price_book_id: str = ""
    title: str = ""
    notes: str = ""
    lines: list[Line] = field(default_factory=list)
    totals: Totals = pricing.ZERO_TOTALS
    version: int = 1
    status: QuoteStatus = QuoteStatus.DRAFT
    valid_until: datetime | None = None
    order_id: str = ""
    reject_reason: str = ""
    send_time: datetime | None = None
    decision_time: datetime | None = None
    row_version: int = 1  # optimistic concurrency (etag), bumps on every write

    @property
    def name(self) -> str:
        return f"quotes/{self.id}"

    def expired_at(self, now: datetime) -> bool:
        """A SENT quote past valid_until counts as expired even before its timer has fired."""
        return self.status is QuoteStatus.SENT and self.valid_until is not None and now > self.valid_until


@dataclass
class Order:
    id: str
    number: str
    customer: str
    currency: str
    owner: str
    team: str
    create_time: datetime
    update_time: datetime
    quote_id: str = ""
    opportunity: str = ""
    price_book_id: str = ""
    title: str = ""
    lines: list[Line] = field(default_factory=list)
    totals: Totals = pricing.ZERO_TOTALS
    status: OrderStatus = OrderStatus.PENDING
    fulfilment_state: FulfilmentState = FulfilmentState.UNFULFILLED
    cancel_reason: str = ""
    row_version: int = 1

    @property
    def name(self) -> str:
        return f"orders/{self.id}"


# --- input ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawLine:
    """A line as the caller sent it; unit_price None = take it from the price book / list price."""

    product_id: str = ""
    description: str = ""
    quantity: int = 0
    unit_price: int | None = None
    unit_price_currency: str = ""
    discount_percent_bp: int = 0
    discount_amount: int = 0
    discount_currency: str = ""
    tax_rate_bp: int = 0


@dataclass(frozen=True)
class CatalogProduct:
    sku: str
    display_name: str
    active: bool
    list_price_currency: str
    list_price: int


@dataclass(frozen=True)
class Catalog:
    """What line building needs to know: the products named and the price book's entries."""

    products: Mapping[str, CatalogProduct] = field(default_factory=dict)
    # product id -> [(min_quantity, unit_price)] of the price book in the quote's currency.
    book_prices: Mapping[str, Sequence[tuple[int, int]]] = field(default_factory=dict)


@dataclass(frozen=True)
class QuoteInput:
    customer: str = ""
    opportunity: str = ""
    currency: str = ""
    price_book_id: str = ""
    title: str = ""
    notes: str = ""
    lines: list[RawLine] = field(default_factory=list)
    valid_until: datetime | None = None
    owner: str = ""
    team: str = ""


QUOTE_WRITABLE_FIELDS = frozenset(
    {"customer", "opportunity", "price_book", "title", "lines", "valid_until", "notes", "owner", "team"}
)
QUOTE_OUTPUT_ONLY_FIELDS = frozenset(
    {
        "name",
        "number",
        "currency_code",  # fixed at create: every amount is in it
        "totals",
        "version",
        "status",
        "order",
        "reject_reason",
        "send_time",
        "decision_time",
        "create_time",
        "update_time",
        "etag",
    }
)


def _unit_price(raw: RawLine, product: CatalogProduct | None, catalog: Catalog, currency: str) -> int | None:
    if raw.unit_price is not None:
        return raw.unit_price
    if product is None:
        return None
    tiers = [tier for tier in catalog.book_prices.get(raw.product_id, ()) if tier[0] <= raw.quantity]
    if tiers:
        return max(tiers)[1]
    if product.list_price_currency == currency:
        return product.list_price
    return None


def build_lines(
    raw_lines: Sequence[RawLine], *, currency: str, catalog: Catalog, path: str, violations: Violations
) -> tuple[list[Line], Totals]:
    """Resolve products and unit prices, then price every line; problems go to `violations`."""
    if len(raw_lines) > pricing.MAX_LINES:
        violations.add(path, f"at most {pricing.MAX_LINES} lines")
        return [], pricing.ZERO_TOTALS
    inputs: list[LineInput] = []
    resolved: list[tuple[RawLine, CatalogProduct | None]] = []
    for index, raw in enumerate(raw_lines):
        at = f"{path}[{index}]"
        product = None
        if raw.product_id:
            product = catalog.products.get(raw.product_id)
            if product is None:
                violations.add(f"{at}.product", f"products/{raw.product_id} does not exist")
            elif not product.active:
                violations.add(f"{at}.product", f"products/{raw.product_id} is inactive")
        elif not raw.description.strip():
            violations.add(f"{at}.description", "is required on a line without a product")
        pricing.check_currency(
            currency, raw.unit_price_currency, f"{at}.unit_price.currency_code", violations
        )
        pricing.check_currency(
            currency, raw.discount_currency, f"{at}.discount_amount.currency_code", violations
        )
        unit_price = _unit_price(raw, product, catalog, currency)
        if unit_price is None and (product is not None or not raw.product_id):
            violations.add(
                f"{at}.unit_price",
                f"is required: no price book entry or list price in {currency} for this line",
            )
        inputs.append(
            LineInput(
                quantity=raw.quantity,
                unit_price=unit_price or 0,
                discount_percent_bp=raw.discount_percent_bp,
                discount_amount=raw.discount_amount,
                tax_rate_bp=raw.tax_rate_bp,
            )
        )
        resolved.append((raw, product))
    amounts, totals = pricing.price_lines(inputs, path=path, violations=violations)
    lines = [
        Line(
            product_id=raw.product_id,
            sku=product.sku if product else "",
            description=raw.description.strip() or (product.display_name if product else ""),
            quantity=line.quantity,
            unit_price=line.unit_price,
            discount_percent_bp=line.discount_percent_bp,
            discount_amount=line.discount_amount,
            tax_rate_bp=line.tax_rate_bp,
            amounts=amount,
        )
        for (raw, product), line, amount in zip(resolved, inputs, amounts, strict=True)
    ]
    return lines, totals


def check_ownership(grant: ScopeGrant, *, owner: str, team: str, what: str = "quotes") -> None:
    """A caller may only create or move a record into their own scope."""
    if grant.scope is Scope.OWN and owner != grant.subject:
        raise PermissionDenied(
            f"you can only own {what} yourself; ask a manager to assign one to someone else",
            reason="OWNER_OUTSIDE_SCOPE",
        )
    if grant.scope is Scope.TEAM and team != grant.team:
        raise PermissionDenied(
            f"you can only place {what} in your team ({grant.team or 'none'})", reason="TEAM_OUTSIDE_SCOPE"
        )


def new_quote(
    data: QuoteInput,
    *,
    quote_id: str,
    number: str,
    now: datetime,
    grant: ScopeGrant,
    catalog: Catalog,
    violations: Violations,
) -> Quote:
    """A DRAFT version-1 quote; the caller raises `violations` (which may hold earlier problems too)."""
    if not data.customer:
        violations.add("quote.customer", "is required")
    if not data.currency:
        violations.add("quote.currency_code", "is required")
    if data.valid_until is not None and data.valid_until <= now:
        violations.add("quote.valid_until", "must be in the future")
    lines, totals = build_lines(
        data.lines, currency=data.currency, catalog=catalog, path="quote.lines", violations=violations
    )
    violations.raise_if_any("the quote has invalid fields")
    owner = data.owner.strip() or grant.subject
    team = data.team.strip() or grant.team
    check_ownership(grant, owner=owner, team=team)
    return Quote(
        id=quote_id,
        number=number,
        customer=data.customer,
        opportunity=data.opportunity,
        currency=data.currency,
        price_book_id=data.price_book_id,
        title=data.title.strip(),
        notes=data.notes,
        lines=lines,
        totals=totals,
        valid_until=data.valid_until,
        owner=owner,
        team=team,
        create_time=now,
        update_time=now,
    )


def update_quote(
    current: Quote,
    data: QuoteInput,
    fields: frozenset[str],
    *,
    now: datetime,
    grant: ScopeGrant,
    catalog: Catalog,
    violations: Violations,
) -> tuple[Quote, list[str]]:
    """Apply the named fields to a DRAFT quote; returns the new state and the fields that changed."""
    require_status(current, "update", QuoteStatus.DRAFT)
    changes: dict[str, object] = {}
    if "customer" in fields:
        if not data.customer:
            violations.add("quote.customer", "is required")
        changes["customer"] = data.customer
    if "opportunity" in fields:
        changes["opportunity"] = data.opportunity
    if "price_book" in fields:
        changes["price_book_id"] = data.price_book_id
    if "title" in fields:
        changes["title"] = data.title.strip()
    if "notes" in fields:
        changes["notes"] = data.notes
    if "valid_until" in fields:
        if data.valid_until is not None and data.valid_until <= now:
            violations.add("quote.valid_until", "must be in the future")
        changes["valid_until"] = data.valid_until
    if "lines" in fields:
        lines, totals = build_lines(
            data.lines, currency=current.currency, catalog=catalog, path="quote.lines", violations=violations
        )
        changes["lines"], changes["totals"] = lines, totals
    if "owner" in fields:
        changes["owner"] = data.owner.strip() or grant.subject
    if "team" in fields:
        changes["team"] = data.team.strip() or grant.team
    violations.raise_if_any("the quote has invalid fields")
    changed = [
        name for name, value in changes.items() if getattr(current, name) != value and name != "totals"
    ]
    if not changed:
        return current, []
    if {"owner", "team"} & set(changed):
        if grant.scope is Scope.OWN:
            raise PermissionDenied(
                "sales reps cannot hand a quote to someone else", reason="OWNER_CHANGE_NOT_ALLOWED"
            )
        check_ownership(
            grant, owner=changes.get("owner", current.owner), team=changes.get("team", current.team)
        )
    updated = replace(current, **changes, update_time=now, row_version=current.row_version + 1)
    return updated, [_API_FIELD.get(name, name) for name in changed]


_API_FIELD = {"price_book_id": "price_book"}


# --- the status machine ---------------------------------------------------------------------------

# action -> (statuses it is allowed from, status it leads to)
QUOTE_TRANSITIONS: dict[str, tuple[frozenset[QuoteStatus], QuoteStatus | None]] = {
    "update": (frozenset({QuoteStatus.DRAFT}), None),
    "delete": (frozenset({QuoteStatus.DRAFT}), None),
    "send": (frozenset({QuoteStatus.DRAFT}), QuoteStatus.SENT),
    "accept": (frozenset({QuoteStatus.SENT}), QuoteStatus.ACCEPTED),
    "reject": (frozenset({QuoteStatus.SENT}), QuoteStatus.REJECTED),
    "expire": (frozenset({QuoteStatus.SENT}), QuoteStatus.EXPIRED),
    "revise": (frozenset({QuoteStatus.SENT, QuoteStatus.REJECTED, QuoteStatus.EXPIRED}), QuoteStatus.DRAFT),
}


def require_status(quote: Quote, action: str, *_: QuoteStatus) -> None:
    allowed, _target = QUOTE_TRANSITIONS[action]
    if quote.status not in allowed:
        raise FailedPrecondition(
            f"cannot {action} {quote.name}: it is {quote.status.value}; "
            f"{action} needs {' or '.join(sorted(s.value for s in allowed))}",
            reason=f"QUOTE_NOT_{'_OR_'.join(sorted(s.name for s in allowed))}",
            metadata={"resource": quote.name, "status": quote.status.value, "action": action},
        )


def next_status(status: QuoteStatus, action: str) -> QuoteStatus:
    """Pure transition function (used by property tests): the target status or FailedPrecondition."""
    allowed, target = QUOTE_TRANSITIONS[action]
    if status not in allowed or target is None:
        raise FailedPrecondition(f"cannot {action} a {status.value} quote", reason="ILLEGAL_QUOTE_TRANSITION")
    return target


def send_quote(quote: Quote, *, now: datetime) -> Quote:
    require_status(quote, "send")
    violations = Violations()
    if not quote.lines:
        violations.add("quote.lines", "a quote needs at least one line before it is sent")
    if quote.valid_until is None:
        violations.add("quote.valid_until", "is required before the quote is sent")
    if violations.items:
        raise FailedPrecondition(
            f"{quote.name} is not ready to send: "
            + "; ".join(f"{v.field} {v.description}" for v in violations.items),
            reason="QUOTE_INCOMPLETE",
            metadata={"resource": quote.name},
        )
    if quote.valid_until is not None and quote.valid_until <= now:
        raise FailedPrecondition(
            f"{quote.name} has valid_until in the past; update it before sending",
            reason="QUOTE_VALIDITY_PAST",
            metadata={"resource": quote.name},
        )
    return _moved(quote, QuoteStatus.SENT, now, send_time=now)


def accept_quote(quote: Quote, *, now: datetime, order_id: str) -> Quote:
    if quote.expired_at(now):
        raise FailedPrecondition(
            f"{quote.name} expired at {quote.valid_until.isoformat()}; revise it and send it again",
            reason="QUOTE_EXPIRED",
            metadata={"resource": quote.name, "status": QuoteStatus.EXPIRED.value},
        )
    require_status(quote, "accept")
    return _moved(quote, QuoteStatus.ACCEPTED, now, decision_time=now, order_id=order_id)


def reject_quote(quote: Quote, *, now: datetime, reason: str) -> Quote:
    require_status(quote, "reject")
    return _moved(quote, QuoteStatus.REJECTED, now, decision_time=now, reject_reason=reason.strip())


def expire_quote(quote: Quote, *, now: datetime) -> Quote | None:
    """The expired quote, or None when it no longer should expire (accepted, revised, moved deadline)."""
    if not quote.expired_at(now):
        return None
    return _moved(quote, QuoteStatus.EXPIRED, now, decision_time=now)


def revise_quote(quote: Quote, *, now: datetime) -> Quote:
    """A new DRAFT version with the same number and lines; the caller archives the old version."""
    require_status(quote, "revise")
    return _moved(
        quote,
        QuoteStatus.DRAFT,
        now,
        version=quote.version + 1,
        send_time=None,
        decision_time=None,
        reject_reason="",
        valid_until=None if quote.valid_until is None or quote.valid_until <= now else quote.valid_until,
    )


def _moved(quote: Quote, status: QuoteStatus, now: datetime, **changes) -> Quote:
    return replace(quote, status=status, update_time=now, row_version=quote.row_version + 1, **changes)


def order_from_quote(quote: Quote, *, order_id: str, number: str, now: datetime) -> Order:
    return Order(
        id=order_id,
        number=number,
        quote_id=quote.id,
        customer=quote.customer,
        opportunity=quote.opportunity,
        currency=quote.currency,
        price_book_id=quote.price_book_id,
        title=quote.title,
        lines=list(quote.lines),
        totals=quote.totals,
        owner=quote.owner,
        team=quote.team,
        create_time=now,
        update_time=now,
    )


# --- orders ---------------------------------------------------------------------------------------

ORDER_TRANSITIONS: dict[str, frozenset[OrderStatus]] = {
    "confirm": frozenset({OrderStatus.PENDING}),
    "fulfill": frozenset({OrderStatus.CONFIRMED}),
    "cancel": frozenset({OrderStatus.PENDING, OrderStatus.CONFIRMED}),
}


def _require_order(order: Order, action: str) -> None:
    allowed = ORDER_TRANSITIONS[action]
    if order.status not in allowed:
        raise FailedPrecondition(
            f"cannot {action} {order.name}: it is {order.status.value}; "
            f"{action} needs {' or '.join(sorted(s.value for s in allowed))}",
            reason=f"ORDER_NOT_{'_OR_'.join(sorted(s.name for s in allowed))}",
            metadata={"resource": order.name, "status": order.status.value, "action": action},
        )


def confirm_order(order: Order, *, now: datetime) -> Order:
    _require_order(order, "confirm")
    return replace(order, status=OrderStatus.CONFIRMED, update_time=now, row_version=order.row_version + 1)


def fulfill_order(order: Order, *, now: datetime, partial: bool) -> Order:
    _require_order(order, "fulfill")
    if partial:
        return replace(
            order,
            fulfilment_state=FulfilmentState.PARTIALLY_FULFILLED,
            update_time=now,
            row_version=order.row_version + 1,
        )
    return replace(
        order,
        status=OrderStatus.FULFILLED,
        fulfilment_state=FulfilmentState.FULFILLED,
        update_time=now,
        row_version=order.row_version + 1,
    )


def cancel_order(order: Order, *, now: datetime, reason: str) -> Order:
    _require_order(order, "cancel")
    if order.fulfilment_state is not FulfilmentState.UNFULFILLED:
        raise FailedPrecondition(
            f"{order.name} is already partly delivered and cannot be cancelled",
            reason="ORDER_PARTLY_FULFILLED",
            metadata={"resource": order.name},
        )
    return replace(
        order,
        status=OrderStatus.CANCELLED,
        cancel_reason=reason.strip(),
        update_time=now,
        row_version=order.row_version + 1,
    )


def new_order(
    data: QuoteInput,
    *,
    order_id: str,
    number: str,
    now: datetime,
    grant: ScopeGrant,
    catalog: Catalog,
    violations: Violations,
) -> Order:
    """A direct order (no quote): PENDING, UNFULFILLED, priced like a quote."""
    if not data.customer:
        violations.add("order.customer", "is required")
    if not data.currency:
        violations.add("order.currency_code", "is required")
    if not data.lines:
        violations.add("order.lines", "an order needs at least one line")
    lines, totals = build_lines(
        data.lines, currency=data.currency, catalog=catalog, path="order.lines", violations=violations
    )
    violations.raise_if_any("the order has invalid fields")
    owner = data.owner.strip() or grant.subject
    team = data.team.strip() or grant.team
    check_ownership(grant, owner=owner, team=team, what="orders")
    return Order(
        id=order_id,
        number=number,
        customer=data.customer,
        opportunity=data.opportunity,
        currency=data.currency,
        price_book_id=data.price_book_id,
        title=data.title.strip(),
        lines=lines,
        totals=totals,
        owner=owner,
        team=team,
        create_time=now,
        update_time=now,
    )
