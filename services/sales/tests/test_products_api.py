"""ProductService through a real gRPC channel, on SQLite and PostgreSQL: catalogue CRUD, SKU
uniqueness, price books (one default per currency) and their entries, roles."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2

from crm.common.v1.money_pb2 import Money
from crm.sales.v1 import product_service_pb2 as pb
from crm.sales.v1 import product_service_pb2_grpc as pb_grpc
from crm_shared.grpc.status import error_details

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
def products(channel):
    return pb_grpc.ProductServiceStub(channel)


async def expect_error(call, code: grpc.StatusCode):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    details = error_details(caught.value)
    assert details.code == code, f"{details.code} {details.message}"
    return details


def product(sku: str = "", **overrides) -> pb.Product:
    fields = dict(
        sku=sku or f"SKU-{uuid.uuid4().hex[:8]}",
        display_name="CRM Pro licence",
        category="software",
        unit="seat",
        list_price=Money(currency_code="CNY", amount_minor=120_000),
    )
    fields.update(overrides)
    return pb.Product(**fields)


async def test_product_crud_with_sku_uniqueness_and_idempotent_create(products, as_user):
    manager = as_user("sales_manager", "mia", team="east")
    request_id = str(uuid.uuid4())
    created = await products.CreateProduct(
        pb.CreateProductRequest(product=product("CRM-PRO-1Y"), request_id=request_id), metadata=manager
    )
    assert created.name.startswith("products/") and created.active and created.etag
    assert created.list_price == Money(currency_code="CNY", amount_minor=120_000)
    # A retry with the same request_id returns the first result, not a duplicate error.
    again = await products.CreateProduct(
        pb.CreateProductRequest(product=product("CRM-PRO-1Y"), request_id=request_id), metadata=manager
    )
    assert again == created

    duplicate = await expect_error(
        products.CreateProduct(pb.CreateProductRequest(product=product("CRM-PRO-1Y")), metadata=manager),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert duplicate.reason == "DUPLICATE_SKU"
    assert duplicate.metadata["existing"] == created.name

    # Everyone in sales reads; a rep may not write.
    rep = as_user("sales_rep", "bob", team="east")
    assert (await products.GetProduct(pb.GetProductRequest(name=created.name), metadata=rep)) == created
    await expect_error(
        products.CreateProduct(pb.CreateProductRequest(product=product()), metadata=rep),
        grpc.StatusCode.PERMISSION_DENIED,
    )

    updated = await products.UpdateProduct(
        pb.UpdateProductRequest(
            product=pb.Product(
                name=created.name, display_name="CRM Pro (1 year)", active=False, etag=created.etag
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name", "active"]),
        ),
        metadata=manager,
    )
    assert (updated.display_name, updated.active, updated.sku) == ("CRM Pro (1 year)", False, "CRM-PRO-1Y")
    stale = await expect_error(
        products.UpdateProduct(
            pb.UpdateProductRequest(
                product=pb.Product(name=created.name, category="x", etag=created.etag),
                update_mask=field_mask_pb2.FieldMask(paths=["category"]),
            ),
            metadata=manager,
        ),
        grpc.StatusCode.ABORTED,
    )
    assert stale.reason == "STALE_ETAG"

    # Renaming a SKU onto another product's SKU is ALREADY_EXISTS too.
    other = await products.CreateProduct(
        pb.CreateProductRequest(product=product("OTHER-1")), metadata=manager
    )
    clash = await expect_error(
        products.UpdateProduct(
            pb.UpdateProductRequest(
                product=pb.Product(name=other.name, sku="CRM-PRO-1Y"),
                update_mask=field_mask_pb2.FieldMask(paths=["sku"]),
            ),
            metadata=manager,
        ),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert clash.metadata["existing"] == created.name

    listed = await products.ListProducts(
        pb.ListProductsRequest(filter='category = "software" AND active = true'), metadata=rep
    )
    assert [p.sku for p in listed.products] == ["OTHER-1"]
    first = await products.ListProducts(pb.ListProductsRequest(page_size=1), metadata=rep)
    assert len(first.products) == 1 and first.next_page_token
    second = await products.ListProducts(
        pb.ListProductsRequest(page_size=1, page_token=first.next_page_token), metadata=rep
    )
    assert [p.sku for p in (*first.products, *second.products)] == ["CRM-PRO-1Y", "OTHER-1"]

    await products.DeleteProduct(pb.DeleteProductRequest(name=other.name), metadata=manager)
    await expect_error(
        products.GetProduct(pb.GetProductRequest(name=other.name), metadata=rep), grpc.StatusCode.NOT_FOUND
    )


async def test_invalid_products_name_every_bad_field(products, as_user):
    admin = as_user()
    bad = await expect_error(
        products.CreateProduct(
            pb.CreateProductRequest(
                product=product("bad sku!", list_price=Money(currency_code="cny", amount_minor=-1)),
                request_id="not-a-uuid",
            ),
            metadata=admin,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    fields = set(bad.field_violations)
    assert {"product.sku", "product.list_price.currency_code", "product.list_price", "request_id"} <= fields
    missing = await expect_error(
        products.CreateProduct(pb.CreateProductRequest(product=pb.Product()), metadata=admin),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert set(missing.field_violations) == {"product.sku", "product.display_name"}
    await expect_error(
        products.ListProducts(pb.ListProductsRequest(filter="colour = 1"), metadata=admin),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_price_books_one_default_per_currency_and_entries(products, as_user):
    admin = as_user()
    rep = as_user("sales_rep", "bob")
    widget = await products.CreateProduct(pb.CreateProductRequest(product=product()), metadata=admin)
    first = await products.CreatePriceBook(
        pb.CreatePriceBookRequest(
            price_book=pb.PriceBook(display_name="Standard", currency_code="CNY", is_default=True)
        ),
        metadata=admin,
    )
    assert first.active and first.is_default
    second = await products.CreatePriceBook(
        pb.CreatePriceBookRequest(
            price_book=pb.PriceBook(display_name="2027", currency_code="CNY", is_default=True)
        ),
        metadata=admin,
    )
    usd = await products.CreatePriceBook(
        pb.CreatePriceBookRequest(
            price_book=pb.PriceBook(display_name="US", currency_code="USD", is_default=True)
        ),
        metadata=admin,
    )
    defaults = await products.ListPriceBooks(
        pb.ListPriceBooksRequest(filter="is_default = true"), metadata=rep
    )
    assert sorted(b.name for b in defaults.price_books) == sorted([second.name, usd.name])
    assert not (await products.GetPriceBook(pb.GetPriceBookRequest(name=first.name), metadata=rep)).is_default

    entry = await products.CreatePriceBookEntry(
        pb.CreatePriceBookEntryRequest(
            parent=second.name,
            entry=pb.PriceBookEntry(
                product=widget.name, unit_price=Money(currency_code="CNY", amount_minor=99_000)
            ),
        ),
        metadata=admin,
    )
    assert entry.name.startswith(second.name + "/entries/") and entry.min_quantity == 1
    assert entry.unit_price == Money(currency_code="CNY", amount_minor=99_000)
    duplicate = await expect_error(
        products.CreatePriceBookEntry(
            pb.CreatePriceBookEntryRequest(
                parent=second.name,
                entry=pb.PriceBookEntry(
                    product=widget.name, unit_price=Money(currency_code="CNY", amount_minor=1)
                ),
            ),
            metadata=admin,
        ),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert duplicate.metadata["existing"] == entry.name
    wrong_currency = await expect_error(
        products.CreatePriceBookEntry(
            pb.CreatePriceBookEntryRequest(
                parent=second.name,
                entry=pb.PriceBookEntry(
                    product=widget.name,
                    unit_price=Money(currency_code="USD", amount_minor=1),
                    min_quantity=10,
                ),
            ),
            metadata=admin,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert list(wrong_currency.field_violations) == ["entry.unit_price.currency_code"]
    listed = await products.ListPriceBookEntries(
        pb.ListPriceBookEntriesRequest(parent=second.name), metadata=rep
    )
    assert [e.name for e in listed.entries] == [entry.name]

    # A product listed in a price book cannot be deleted; its entry can.
    in_use = await expect_error(
        products.DeleteProduct(pb.DeleteProductRequest(name=widget.name), metadata=admin),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert in_use.reason == "PRODUCT_IN_USE"
    await products.DeletePriceBookEntry(pb.DeletePriceBookEntryRequest(name=entry.name), metadata=admin)
    await products.DeleteProduct(pb.DeleteProductRequest(name=widget.name), metadata=admin)
