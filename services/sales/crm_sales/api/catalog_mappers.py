"""Protobuf <-> domain for products, price books and entries."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import timestamp_pb2

from crm.common.v1 import money_pb2
from crm.sales.v1 import product_service_pb2 as pb
from crm_sales.domain.products import (
    EntryInput,
    PriceBook,
    PriceBookEntry,
    PriceBookInput,
    Product,
    ProductInput,
)
from crm_shared.aip.etag import etag_for
from crm_shared.errors import InvalidArgument


def timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(moment.astimezone(UTC))
    return ts


def from_timestamp(ts: timestamp_pb2.Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def id_from(name: str, collection: str, *, field: str = "name") -> str:
    prefix, _, resource_id = name.partition("/")
    if prefix != collection or not resource_id or "/" in resource_id:
        raise InvalidArgument.for_field(field, f"must look like {collection}/{{id}}")
    return resource_id


def entry_ids_from(name: str, *, field: str = "name") -> tuple[str, str]:
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "priceBooks" or parts[2] != "entries" or not parts[1] or not parts[3]:
        raise InvalidArgument.for_field(field, "must look like priceBooks/{price_book}/entries/{entry}")
    return parts[1], parts[3]


def product_input(message: pb.Product) -> ProductInput:
    has_price = message.HasField("list_price")
    return ProductInput(
        sku=message.sku,
        display_name=message.display_name,
        category=message.category,
        unit=message.unit,
        list_price_currency=message.list_price.currency_code if has_price else "",
        list_price=message.list_price.amount_minor if has_price else None,
        active=message.active if message.HasField("active") else None,
        description=message.description,
    )


def product_to_pb(product: Product) -> pb.Product:
    message = pb.Product(
        name=product.name,
        sku=product.sku,
        display_name=product.display_name,
        category=product.category,
        unit=product.unit,
        active=product.active,
        description=product.description,
        create_time=timestamp(product.create_time),
        update_time=timestamp(product.update_time),
        etag=etag_for(product.id, product.version),
    )
    if product.list_price_currency:
        message.list_price.CopyFrom(
            money_pb2.Money(currency_code=product.list_price_currency, amount_minor=product.list_price)
        )
    return message


def price_book_input(message: pb.PriceBook) -> PriceBookInput:
    return PriceBookInput(
        display_name=message.display_name,
        currency=message.currency_code,
        active=message.active if message.HasField("active") else None,
        is_default=message.is_default,
        description=message.description,
    )


def price_book_to_pb(book: PriceBook) -> pb.PriceBook:
    return pb.PriceBook(
        name=book.name,
        display_name=book.display_name,
        currency_code=book.currency,
        active=book.active,
        is_default=book.is_default,
        description=book.description,
        create_time=timestamp(book.create_time),
        update_time=timestamp(book.update_time),
        etag=etag_for(book.id, book.version),
    )


def entry_input(message: pb.PriceBookEntry) -> EntryInput:
    has_price = message.HasField("unit_price")
    return EntryInput(
        product_id=message.product.removeprefix("products/"),
        unit_price=message.unit_price.amount_minor if has_price else None,
        unit_price_currency=message.unit_price.currency_code if has_price else "",
        min_quantity=message.min_quantity if message.HasField("min_quantity") else None,
    )


def entry_to_pb(entry: PriceBookEntry) -> pb.PriceBookEntry:
    return pb.PriceBookEntry(
        name=entry.name,
        product=f"products/{entry.product_id}",
        unit_price=money_pb2.Money(currency_code=entry.currency, amount_minor=entry.unit_price),
        min_quantity=entry.min_quantity,
        create_time=timestamp(entry.create_time),
        update_time=timestamp(entry.update_time),
        etag=etag_for(entry.id, entry.version),
    )
