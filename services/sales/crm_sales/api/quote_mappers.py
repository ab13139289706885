"""Protobuf <-> domain for quotes and orders."""

from __future__ import annotations

from datetime import datetime

from crm.common.v1 import money_pb2
from crm.sales.v1 import quote_service_pb2 as pb
from crm_sales.api.catalog_mappers import from_timestamp, timestamp
from crm_sales.domain.pricing import Totals
from crm_sales.domain.quotes import (
    FulfilmentState,
    Line,
    Order,
    OrderStatus,
    Quote,
    QuoteInput,
    QuoteStatus,
    RawLine,
)
from crm_shared.aip.etag import etag_for

QUOTE_STATUS_TO_PB = {s: pb.QuoteStatus.Value(f"QUOTE_STATUS_{s.name}") for s in QuoteStatus}
ORDER_STATUS_TO_PB = {s: pb.OrderStatus.Value(f"ORDER_STATUS_{s.name}") for s in OrderStatus}
FULFILMENT_TO_PB = {s: pb.FulfilmentState.Value(f"FULFILMENT_STATE_{s.name}") for s in FulfilmentState}


def _money(currency: str, amount: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, amount_minor=amount)


def raw_line(message: pb.LineItem) -> RawLine:
    has_price = message.HasField("unit_price")
    has_discount = message.HasField("discount_amount")
    return RawLine(
        product_id=message.product.removeprefix("products/"),
        description=message.description,
        quantity=message.quantity,
        unit_price=message.unit_price.amount_minor if has_price else None,
        unit_price_currency=message.unit_price.currency_code if has_price else "",
        discount_percent_bp=message.discount_percent_bp,
        discount_amount=message.discount_amount.amount_minor if has_discount else 0,
        discount_currency=message.discount_amount.currency_code if has_discount else "",
        tax_rate_bp=message.tax_rate_bp,
    )


def quote_input(message: pb.Quote | pb.Order) -> QuoteInput:
    has_validity = isinstance(message, pb.Quote) and message.HasField("valid_until")
    return QuoteInput(
        customer=message.customer,
        opportunity=message.opportunity,
        currency=message.currency_code,
        price_book_id=message.price_book.removeprefix("priceBooks/"),
        title=message.title,
        notes=message.notes if isinstance(message, pb.Quote) else "",
        lines=[raw_line(line) for line in message.lines],
        valid_until=from_timestamp(message.valid_until) if has_validity else None,
        owner=message.owner,
        team=message.team,
    )


def line_to_pb(line: Line, currency: str) -> pb.LineItem:
    a = line.amounts
    message = pb.LineItem(
        product=f"products/{line.product_id}" if line.product_id else "",
        sku=line.sku,
        description=line.description,
        quantity=line.quantity,
        unit_price=_money(currency, line.unit_price),
        discount_percent_bp=line.discount_percent_bp,
        tax_rate_bp=line.tax_rate_bp,
        amounts=pb.LineAmounts(
            gross=_money(currency, a.gross),
            discount=_money(currency, a.discount),
            net=_money(currency, a.net),
            tax=_money(currency, a.tax),
            total=_money(currency, a.total),
        ),
    )
    if line.discount_amount:
        message.discount_amount.CopyFrom(_money(currency, line.discount_amount))
    return message


def totals_to_pb(totals: Totals, currency: str) -> pb.Totals:
    return pb.Totals(
        subtotal=_money(currency, totals.subtotal),
        discount_total=_money(currency, totals.discount_total),
        tax_total=_money(currency, totals.tax_total),
        grand_total=_money(currency, totals.grand_total),
    )


def quote_to_pb(quote: Quote, *, now: datetime | None = None) -> pb.Quote:
    """`now`: show a SENT quote past valid_until as EXPIRED even before its expiry timer fired."""
    status = QuoteStatus.EXPIRED if now is not None and quote.expired_at(now) else quote.status
    message = pb.Quote(
        name=quote.name,
        number=quote.number,
        customer=quote.customer,
        opportunity=quote.opportunity,
        currency_code=quote.currency,
        price_book=f"priceBooks/{quote.price_book_id}" if quote.price_book_id else "",
        title=quote.title,
        lines=[line_to_pb(line, quote.currency) for line in quote.lines],
        totals=totals_to_pb(quote.totals, quote.currency),
        version=quote.version,
        status=QUOTE_STATUS_TO_PB[status],
        owner=quote.owner,
        team=quote.team,
        order=f"orders/{quote.order_id}" if quote.order_id else "",
        reject_reason=quote.reject_reason,
        notes=quote.notes,
        create_time=timestamp(quote.create_time),
        update_time=timestamp(quote.update_time),
        etag=etag_for(quote.id, quote.row_version),
    )
    for name in ("valid_until", "send_time", "decision_time"):
        moment = getattr(quote, name)
        if moment is not None:
            getattr(message, name).CopyFrom(timestamp(moment))
    if status is QuoteStatus.EXPIRED and quote.decision_time is None and quote.valid_until is not None:
        message.decision_time.CopyFrom(timestamp(quote.valid_until))
    return message


def order_to_pb(order: Order) -> pb.Order:
    return pb.Order(
        name=order.name,
        number=order.number,
        quote=f"quotes/{order.quote_id}" if order.quote_id else "",
        customer=order.customer,
        opportunity=order.opportunity,
        currency_code=order.currency,
        price_book=f"priceBooks/{order.price_book_id}" if order.price_book_id else "",
        title=order.title,
        lines=[line_to_pb(line, order.currency) for line in order.lines],
        totals=totals_to_pb(order.totals, order.currency),
        status=ORDER_STATUS_TO_PB[order.status],
        fulfilment_state=FULFILMENT_TO_PB[order.fulfilment_state],
        owner=order.owner,
        team=order.team,
        cancel_reason=order.cancel_reason,
        create_time=timestamp(order.create_time),
        update_time=timestamp(order.update_time),
        etag=etag_for(order.id, order.row_version),
    )
