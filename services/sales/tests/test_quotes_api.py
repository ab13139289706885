"""QuoteService through a real gRPC channel, on SQLite and PostgreSQL, with real NATS.

What a caller notices: server-computed totals (checked against an independent
computation here), draft-only edits, send -> accept creating exactly one order
however often AcceptQuote is retried or raced, the events on the stream,
versions, data scope, expiry, and INVALID_ARGUMENT naming every bad field.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import grpc
import pytest
from google.protobuf import field_mask_pb2, timestamp_pb2

from crm.common.v1.money_pb2 import Money
from crm.sales.v1 import events_pb2
from crm.sales.v1 import product_service_pb2 as ppb
from crm.sales.v1 import product_service_pb2_grpc as ppb_grpc
from crm.sales.v1 import quote_service_pb2 as pb
from crm.sales.v1 import quote_service_pb2_grpc as pb_grpc
from crm_sales.api.quotes import QuoteServicer
from crm_sales.bootstrap import build
from crm_sales.config import SalesSettings
from crm_sales.timers import timer_handlers
from crm_shared.clock import ManualClock
from crm_shared.grpc.status import error_details
from crm_shared.pii.crypto import generate_key
from crm_shared.runtime import start_service
from crm_shared.testing.events import stream_envelopes, wait_for_envelopes
from crm_shared.testing.fixtures_nats import connect_nats
from crm_shared.timers import TimerScheduler

pytestmark = pytest.mark.asyncio(loop_scope="session")

STREAM = "CRM_SALES"


@pytest.fixture
def quotes(channel):
    return pb_grpc.QuoteServiceStub(channel)


@pytest.fixture
def catalog(channel):
    return ppb_grpc.ProductServiceStub(channel)


async def expect_error(call, code: grpc.StatusCode):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    details = error_details(caught.value)
    assert details.code == code, f"{details.code} {details.message}"
    return details


def customer() -> str:
    return f"customers/{uuid.uuid4()}"


def cny(amount: int) -> Money:
    return Money(currency_code="CNY", amount_minor=amount)


def in_days(days: float, base: datetime | None = None) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime((base or datetime.now(UTC)) + timedelta(days=days))
    return ts


def half_even(value: Fraction) -> int:
    floor = value.numerator // value.denominator
    rest = value - floor
    return floor + 1 if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2) else floor


def expected_line(
    quantity: int, unit_price: int, discount_bp: int = 0, discount_amount: int = 0, tax_bp: int = 0
):
    gross = quantity * unit_price
    discount = half_even(Fraction(gross * discount_bp, 10_000)) + discount_amount
    net = gross - discount
    tax = half_even(Fraction(net * tax_bp, 10_000))
    return gross, discount, net, tax, net + tax


async def setup_catalog(catalog, as_user) -> tuple[str, str]:
    """Two products: one in the default CNY price book (with a volume tier), one at list price only."""
    admin = as_user()
    tag = uuid.uuid4().hex[:6]
    licence = await catalog.CreateProduct(
        ppb.CreateProductRequest(
            product=ppb.Product(
                sku=f"LIC-{tag}", display_name="Licence", unit="seat", list_price=cny(100_000)
            )
        ),
        metadata=admin,
    )
    service = await catalog.CreateProduct(
        ppb.CreateProductRequest(
            product=ppb.Product(
                sku=f"SVC-{tag}", display_name="Onboarding", unit="hour", list_price=cny(33_333)
            )
        ),
        metadata=admin,
    )
    book = await catalog.CreatePriceBook(
        ppb.CreatePriceBookRequest(
            price_book=ppb.PriceBook(display_name="Standard", currency_code="CNY", is_default=True)
        ),
        metadata=admin,
    )
    for min_quantity, price in ((1, 89_990), (10, 79_995)):
        await catalog.CreatePriceBookEntry(
            ppb.CreatePriceBookEntryRequest(
                parent=book.name,
                entry=ppb.PriceBookEntry(
                    product=licence.name, unit_price=cny(price), min_quantity=min_quantity
                ),
            ),
            metadata=admin,
        )
    return licence.name, service.name


def sample_lines(licence: str, service: str) -> list[pb.LineItem]:
    return [
        # Price from the default book's volume tier (>= 10 seats), 12.5 % off, 13 % VAT.
        pb.LineItem(product=licence, quantity=12, discount_percent_bp=1250, tax_rate_bp=1300),
        # Price from the product's list price; fixed discount, 6 % tax.
        pb.LineItem(product=service, quantity=7, discount_amount=cny(1_001), tax_rate_bp=600),
        # A free-text line with an explicit price.
        pb.LineItem(description="Travel", quantity=1, unit_price=cny(45_055), tax_rate_bp=0),
    ]


async def draft_quote(quotes, metadata, licence, service, **overrides) -> pb.Quote:
    fields = dict(
        customer=customer(),
        currency_code="CNY",
        title="CRM rollout",
        lines=sample_lines(licence, service),
        valid_until=in_days(30),
    )
    fields.update(overrides)
    return await quotes.CreateQuote(pb.CreateQuoteRequest(quote=pb.Quote(**fields)), metadata=metadata)


async def test_quote_totals_are_computed_server_side_and_match_an_independent_computation(
    quotes, catalog, as_user
):
    licence, service = await setup_catalog(catalog, as_user)
    rep = as_user("sales_rep", "bob", team="east")
    quote = await draft_quote(quotes, rep, licence, service)
    assert quote.status == pb.QUOTE_STATUS_DRAFT and quote.version == 1
    assert quote.number.startswith("Q-") and quote.owner == "bob" and quote.team == "east"

    expected = [
        expected_line(12, 79_995, discount_bp=1250, tax_bp=1300),
        expected_line(7, 33_333, discount_amount=1_001, tax_bp=600),
        expected_line(1, 45_055),
    ]
    assert [line.unit_price.amount_minor for line in quote.lines] == [79_995, 33_333, 45_055]
    for line, (gross, discount, net, tax, total) in zip(quote.lines, expected, strict=True):
        a = line.amounts
        assert (a.gross, a.discount, a.net, a.tax, a.total) == tuple(
            cny(v) for v in (gross, discount, net, tax, total)
        )
    assert quote.lines[0].sku.startswith("LIC-") and quote.lines[1].description == "Onboarding"
    t = quote.totals
    assert t.subtotal == cny(sum(e[0] for e in expected))
    assert t.discount_total == cny(sum(e[1] for e in expected))
    assert t.tax_total == cny(sum(e[3] for e in expected))
    assert t.grand_total == cny(sum(e[4] for e in expected))
    assert (await quotes.GetQuote(pb.GetQuoteRequest(name=quote.name), metadata=rep)) == quote

    # A small order (< 10 seats) takes the base tier of the book.
    small = await draft_quote(quotes, rep, licence, service, lines=[pb.LineItem(product=licence, quantity=2)])
    assert small.lines[0].unit_price == cny(89_990) and small.totals.grand_total == cny(179_980)


async def test_update_only_in_draft_and_lines_are_repriced(quotes, catalog, as_user):
    licence, service = await setup_catalog(catalog, as_user)
    rep = as_user("sales_rep", "bob", team="east")
    quote = await draft_quote(quotes, rep, licence, service)
    updated = await quotes.UpdateQuote(
        pb.UpdateQuoteRequest(
            quote=pb.Quote(
                name=quote.name,
                etag=quote.etag,
                title="Revised scope",
                lines=[pb.LineItem(product=service, quantity=3, tax_rate_bp=600)],
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["title", "lines"]),
        ),
        metadata=rep,
    )
    *_, tax, total = expected_line(3, 33_333, tax_bp=600)
    assert updated.title == "Revised scope" and len(updated.lines) == 1
    assert updated.totals.grand_total == cny(total) and updated.totals.tax_total == cny(tax)
    assert updated.etag != quote.etag
    await expect_error(
        quotes.UpdateQuote(
            pb.UpdateQuoteRequest(
                quote=pb.Quote(name=quote.name, currency_code="USD"),
                update_mask=field_mask_pb2.FieldMask(paths=["currency_code"]),
            ),
            metadata=rep,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )

    sent = await quotes.SendQuote(pb.SendQuoteRequest(name=quote.name, etag=updated.etag), metadata=rep)
    assert sent.status == pb.QUOTE_STATUS_SENT and sent.HasField("send_time")
    not_draft = await expect_error(
        quotes.UpdateQuote(
            pb.UpdateQuoteRequest(
                quote=pb.Quote(name=quote.name, title="too late"),
                update_mask=field_mask_pb2.FieldMask(paths=["title"]),
            ),
            metadata=rep,
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert not_draft.reason == "QUOTE_NOT_DRAFT" and not_draft.metadata["status"] == "sent"
    await expect_error(
        quotes.DeleteQuote(pb.DeleteQuoteRequest(name=quote.name), metadata=rep),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    await expect_error(
        quotes.SendQuote(pb.SendQuoteRequest(name=quote.name), metadata=rep),
        grpc.StatusCode.FAILED_PRECONDITION,
    )

    other = await draft_quote(quotes, rep, licence, service)
    await quotes.DeleteQuote(pb.DeleteQuoteRequest(name=other.name, etag=other.etag), metadata=rep)
    await expect_error(
        quotes.GetQuote(pb.GetQuoteRequest(name=other.name), metadata=rep), grpc.StatusCode.NOT_FOUND
    )


async def test_accept_creates_exactly_one_order_when_retried_or_raced_and_publishes_events(
    quotes, catalog, as_user, nats_server
):
    licence, service = await setup_catalog(catalog, as_user)
    rep = as_user("sales_rep", "bob", team="east")
    opportunity = f"opportunities/{uuid.uuid4()}"
    quote = await draft_quote(quotes, rep, licence, service, opportunity=opportunity)
    sent = await quotes.SendQuote(
        pb.SendQuoteRequest(name=quote.name, request_id=str(uuid.uuid4())), metadata=rep
    )

    request_id = str(uuid.uuid4())
    # Five concurrent accepts (distinct request ids) plus two retries of one request id.
    racing = [
        quotes.AcceptQuote(pb.AcceptQuoteRequest(name=quote.name, request_id=str(uuid.uuid4())), metadata=rep)
        for _ in range(5)
    ]
    retried = [
        quotes.AcceptQuote(pb.AcceptQuoteRequest(name=quote.name, request_id=request_id), metadata=rep)
        for _ in range(2)
    ]
    replies = await asyncio.gather(*racing, *retried)
    orders = {reply.order.name for reply in replies}
    assert len(orders) == 1, orders
    order = replies[0].order
    assert replies[-1] == replies[-2]  # the same request id gives the same response
    assert all(reply.quote.status == pb.QUOTE_STATUS_ACCEPTED for reply in replies)
    accepted = await quotes.GetQuote(pb.GetQuoteRequest(name=quote.name), metadata=rep)
    assert accepted.order == order.name and accepted.status == pb.QUOTE_STATUS_ACCEPTED
    # A later plain retry (no request id, old etag) still answers with the same order.
    later = await quotes.AcceptQuote(pb.AcceptQuoteRequest(name=quote.name, etag=sent.etag), metadata=rep)
    assert later.order.name == order.name

    assert order.quote == quote.name and order.customer == quote.customer
    assert (
        order.status == pb.ORDER_STATUS_PENDING and order.fulfilment_state == pb.FULFILMENT_STATE_UNFULFILLED
    )
    assert order.totals == quote.totals and list(order.lines) == list(quote.lines)
    listed = await quotes.ListOrders(pb.ListOrdersRequest(filter=f'quote = "{quote.name}"'), metadata=rep)
    assert [o.name for o in listed.orders] == [order.name]
    await expect_error(
        quotes.RejectQuote(pb.RejectQuoteRequest(name=quote.name, reason="changed mind"), metadata=rep),
        grpc.StatusCode.FAILED_PRECONDITION,
    )

    nc = await connect_nats(nats_server.url)
    try:
        js = nc.jetstream()
        quote_events = await wait_for_envelopes(js, STREAM, resource=quote.name, count=1)
        order_events = await wait_for_envelopes(js, STREAM, resource=order.name, count=1)
        await asyncio.sleep(0.3)  # anything duplicated would be on the stream by now
        all_events = [env for _, env in await stream_envelopes(js, STREAM)]
    finally:
        await nc.close()
    assert [e.type for e in quote_events] == ["crm.sales.v1.QuoteAccepted"]
    assert [e.type for e in order_events] == ["crm.sales.v1.OrderCreated"]
    assert sum(1 for e in all_events if e.subject in (quote.name, order.name)) == 2
    accepted_event, created_event = events_pb2.QuoteAccepted(), events_pb2.OrderCreated()
    quote_events[0].payload.Unpack(accepted_event)
    order_events[0].payload.Unpack(created_event)
    assert accepted_event.opportunity == opportunity and accepted_event.total == quote.totals.grand_total
    assert (accepted_event.owner, accepted_event.team) == ("bob", "east")
    assert created_event.quote == quote.name and created_event.total == quote.totals.grand_total
    assert [line.quantity for line in created_event.lines] == [12, 7, 1]
    assert (
        sum(line.amount.amount_minor for line in created_event.lines) == quote.totals.grand_total.amount_minor
    )
    assert created_event.lines[0].sku.startswith("LIC-") and created_event.lines[2].product == ""


async def test_order_status_methods_confirm_fulfil_cancel(quotes, catalog, as_user):
    licence, _ = await setup_catalog(catalog, as_user)
    rep = as_user("sales_rep", "bob", team="east")
    order = await quotes.CreateOrder(
        pb.CreateOrderRequest(
            order=pb.Order(
                customer=customer(), currency_code="CNY", lines=[pb.LineItem(product=licence, quantity=3)]
            ),
            request_id=str(uuid.uuid4()),
        ),
        metadata=rep,
    )
    assert order.number.startswith("SO-") and order.status == pb.ORDER_STATUS_PENDING
    await expect_error(
        quotes.FulfillOrder(pb.FulfillOrderRequest(name=order.name), metadata=rep),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    # The order moves on: confirm, fulfil partly then fully; a fulfilled order cannot be cancelled.
    confirmed = await quotes.ConfirmOrder(pb.ConfirmOrderRequest(name=order.name), metadata=rep)
    partly = await quotes.FulfillOrder(pb.FulfillOrderRequest(name=order.name, partial=True), metadata=rep)
    assert confirmed.status == pb.ORDER_STATUS_CONFIRMED
    assert (partly.status, partly.fulfilment_state) == (
        pb.ORDER_STATUS_CONFIRMED,
        pb.FULFILMENT_STATE_PARTIALLY_FULFILLED,
    )
    done = await quotes.FulfillOrder(pb.FulfillOrderRequest(name=order.name, etag=partly.etag), metadata=rep)
    assert (done.status, done.fulfilment_state) == (pb.ORDER_STATUS_FULFILLED, pb.FULFILMENT_STATE_FULFILLED)
    await expect_error(
        quotes.CancelOrder(pb.CancelOrderRequest(name=order.name, reason="x"), metadata=rep),
        grpc.StatusCode.FAILED_PRECONDITION,
    )


async def test_revise_keeps_read_only_versions_with_the_same_number(quotes, catalog, as_user):
    licence, service = await setup_catalog(catalog, as_user)
    rep = as_user("sales_rep", "bob", team="east")
    quote = await draft_quote(quotes, rep, licence, service)
    await quotes.SendQuote(pb.SendQuoteRequest(name=quote.name), metadata=rep)
    rejected = await quotes.RejectQuote(
        pb.RejectQuoteRequest(name=quote.name, reason="too expensive"), metadata=rep
    )
    assert rejected.status == pb.QUOTE_STATUS_REJECTED and rejected.reject_reason == "too expensive"
    await expect_error(
        quotes.AcceptQuote(pb.AcceptQuoteRequest(name=quote.name), metadata=rep),
        grpc.StatusCode.FAILED_PRECONDITION,
    )

    revised = await quotes.ReviseQuote(
        pb.ReviseQuoteRequest(name=quote.name, etag=rejected.etag), metadata=rep
    )
    assert (revised.status, revised.version, revised.number) == (pb.QUOTE_STATUS_DRAFT, 2, quote.number)
    assert revised.reject_reason == "" and list(revised.lines) == list(quote.lines)
    cheaper = await quotes.UpdateQuote(
        pb.UpdateQuoteRequest(
            quote=pb.Quote(
                name=quote.name, lines=[pb.LineItem(product=licence, quantity=12, discount_percent_bp=2000)]
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["lines"]),
        ),
        metadata=rep,
    )
    await quotes.SendQuote(pb.SendQuoteRequest(name=quote.name), metadata=rep)
    accepted = await quotes.AcceptQuote(pb.AcceptQuoteRequest(name=quote.name), metadata=rep)
    assert accepted.order.totals == cheaper.totals

    versions = (
        await quotes.ListQuoteVersions(pb.ListQuoteVersionsRequest(name=quote.name), metadata=rep)
    ).versions
    assert [(v.version, v.status) for v in versions] == [
        (1, pb.QUOTE_STATUS_REJECTED),
        (2, pb.QUOTE_STATUS_ACCEPTED),
    ]
    assert {v.number for v in versions} == {quote.number}
    assert versions[0].totals == quote.totals and versions[0].reject_reason == "too expensive"
    # An accepted quote is final.
    await expect_error(
        quotes.ReviseQuote(pb.ReviseQuoteRequest(name=quote.name), metadata=rep),
        grpc.StatusCode.FAILED_PRECONDITION,
    )


async def test_data_scope_rep_own_manager_team_other_team_not_found(quotes, catalog, as_user):
    licence, service = await setup_catalog(catalog, as_user)
    bob = as_user("sales_rep", "bob", team="east")
    carol = as_user("sales_rep", "carol", team="east")
    east_manager = as_user("sales_manager", "mia", team="east")
    west_manager = as_user("sales_manager", "walt", team="west")
    finance = as_user("finance", "fay", team="finance")
    quote = await draft_quote(quotes, bob, licence, service)
    carols = await draft_quote(quotes, carol, licence, service)

    await expect_error(
        quotes.GetQuote(pb.GetQuoteRequest(name=quote.name), metadata=carol), grpc.StatusCode.NOT_FOUND
    )
    await expect_error(
        quotes.GetQuote(pb.GetQuoteRequest(name=quote.name), metadata=west_manager), grpc.StatusCode.NOT_FOUND
    )
    await expect_error(
        quotes.SendQuote(pb.SendQuoteRequest(name=quote.name), metadata=west_manager),
        grpc.StatusCode.NOT_FOUND,
    )
    assert (
        await quotes.GetQuote(pb.GetQuoteRequest(name=quote.name), metadata=east_manager)
    ).name == quote.name

    customer_filter = f'customer = "{quote.customer}" OR customer = "{carols.customer}"'
    bobs_view = await quotes.ListQuotes(pb.ListQuotesRequest(filter=customer_filter), metadata=bob)
    assert [q.name for q in bobs_view.quotes] == [quote.name]
    team_view = await quotes.ListQuotes(pb.ListQuotesRequest(filter=customer_filter), metadata=east_manager)
    assert sorted(q.name for q in team_view.quotes) == sorted([quote.name, carols.name])
    assert not (
        await quotes.ListQuotes(pb.ListQuotesRequest(filter=customer_filter), metadata=west_manager)
    ).quotes
    owned = await quotes.ListQuotes(
        pb.ListQuotesRequest(
            filter=f'owner = "carol" AND status = QUOTE_STATUS_DRAFT AND ({customer_filter})'
        ),
        metadata=east_manager,
    )
    assert [q.name for q in owned.quotes] == [carols.name]

    # A rep cannot create a quote for someone else; finance cannot see quotes at all.
    await expect_error(
        quotes.CreateQuote(
            pb.CreateQuoteRequest(
                quote=pb.Quote(
                    customer=customer(),
                    currency_code="CNY",
                    owner="carol",
                    lines=sample_lines(licence, service),
                )
            ),
            metadata=bob,
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    await expect_error(
        quotes.GetQuote(pb.GetQuoteRequest(name=quote.name), metadata=finance),
        grpc.StatusCode.PERMISSION_DENIED,
    )

    # Orders follow the same scope; finance reads every order.
    await quotes.SendQuote(pb.SendQuoteRequest(name=quote.name), metadata=bob)
    order = (await quotes.AcceptQuote(pb.AcceptQuoteRequest(name=quote.name), metadata=bob)).order
    assert (await quotes.GetOrder(pb.GetOrderRequest(name=order.name), metadata=finance)).name == order.name
    await expect_error(
        quotes.GetOrder(pb.GetOrderRequest(name=order.name), metadata=carol), grpc.StatusCode.NOT_FOUND
    )
    await expect_error(
        quotes.GetOrder(pb.GetOrderRequest(name=order.name), metadata=west_manager), grpc.StatusCode.NOT_FOUND
    )
    await expect_error(
        quotes.ConfirmOrder(pb.ConfirmOrderRequest(name=order.name), metadata=finance),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    direct = await quotes.CreateOrder(
        pb.CreateOrderRequest(
            order=pb.Order(
                customer=customer(), currency_code="CNY", lines=[pb.LineItem(product=licence, quantity=1)]
            )
        ),
        metadata=carol,
    )
    assert direct.quote == "" and direct.owner == "carol" and direct.totals.grand_total == cny(89_990)
    cancelled = await quotes.CancelOrder(
        pb.CancelOrderRequest(name=direct.name, reason="duplicate"), metadata=carol
    )
    assert cancelled.status == pb.ORDER_STATUS_CANCELLED and cancelled.cancel_reason == "duplicate"


async def test_every_input_error_is_invalid_argument_with_field_paths(quotes, catalog, as_user):
    licence, service = await setup_catalog(catalog, as_user)
    rep = as_user("sales_rep", "bob", team="east")
    # Shape errors (protovalidate): every one reported at once, with indexed paths.
    shape = await expect_error(
        quotes.CreateQuote(
            pb.CreateQuoteRequest(
                quote=pb.Quote(
                    customer="acme",
                    currency_code="cny",
                    lines=[
                        pb.LineItem(product=licence, quantity=1),
                        pb.LineItem(product=licence, quantity=1, discount_percent_bp=10_001, tax_rate_bp=-1),
                        pb.LineItem(product=licence, quantity=0),
                        pb.LineItem(
                            description="x",
                            quantity=1,
                            unit_price=Money(currency_code="CNY", amount_minor=-5),
                        ),
                    ],
                ),
                request_id="nope",
            ),
            metadata=rep,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert {
        "quote.customer",
        "quote.currency_code",
        "quote.lines[1].discount_percent_bp",
        "quote.lines[1].tax_rate_bp",
        "quote.lines[2].quantity",
        "quote.lines[3].unit_price",
        "request_id",
    } <= set(shape.field_violations)
    too_many = await expect_error(
        quotes.CreateQuote(
            pb.CreateQuoteRequest(
                quote=pb.Quote(
                    customer=customer(),
                    currency_code="CNY",
                    lines=[pb.LineItem(product=licence, quantity=1)] * 201,
                )
            ),
            metadata=rep,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "quote.lines" in too_many.field_violations

    # Domain errors: currency mismatch, discount above gross, overflow, unknown product, missing fields.
    domain = await expect_error(
        quotes.CreateQuote(
            pb.CreateQuoteRequest(
                quote=pb.Quote(
                    currency_code="CNY",
                    lines=[
                        pb.LineItem(
                            product=licence, quantity=1, unit_price=Money(currency_code="USD", amount_minor=5)
                        ),
                        pb.LineItem(product=service, quantity=1, discount_amount=cny(40_000)),
                        pb.LineItem(description="Huge", quantity=1_000_000_000, unit_price=cny(10**12)),
                        pb.LineItem(product=f"products/{uuid.uuid4()}", quantity=1),
                        pb.LineItem(quantity=1, unit_price=cny(1)),
                    ],
                    valid_until=in_days(-1),
                )
            ),
            metadata=rep,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert set(domain.field_violations) == {
        "quote.customer",
        "quote.valid_until",
        "quote.lines[0].unit_price.currency_code",
        "quote.lines[1].discount_amount",
        "quote.lines[2].quantity",
        "quote.lines[3].product",
        "quote.lines[4].description",
    }
    await expect_error(
        quotes.ListQuotes(pb.ListQuotesRequest(filter="status = OPEN"), metadata=rep),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    await expect_error(
        quotes.RejectQuote(pb.RejectQuoteRequest(name=f"quotes/{uuid.uuid4()}"), metadata=rep),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_sent_quote_expires_lazily_and_by_its_durable_timer(
    database_url, nats_server, jwt_keys, token_factory
):
    clock = ManualClock(datetime.now(UTC))
    settings = SalesSettings(
        grpc_port=0,
        database_url=database_url,
        nats_url=nats_server.url,
        jwt_jwks_file=jwt_keys.jwks_path,
        jwt_issuer=jwt_keys.issuer,
        jwt_audience=jwt_keys.audience,
        pii_keys=f"k1:{generate_key()}",
        blind_index_key=generate_key(),
        page_token_secret="test-page-secret",
        shutdown_grace_seconds=2,
    )
    running = await start_service(settings, build, clock=clock)
    try:
        meta = (
            ("authorization", f"Bearer {token_factory(subject='bob', roles=('sales_rep',), team='east')}"),
        )
        async with grpc.aio.insecure_channel(running.address) as channel:
            quotes = pb_grpc.QuoteServiceStub(channel)
            quote = await quotes.CreateQuote(
                pb.CreateQuoteRequest(
                    quote=pb.Quote(
                        customer=customer(),
                        currency_code="CNY",
                        lines=[pb.LineItem(description="Consulting", quantity=2, unit_price=cny(50_000))],
                        valid_until=in_days(7, clock.now()),
                    )
                ),
                metadata=meta,
            )
            await quotes.SendQuote(pb.SendQuoteRequest(name=quote.name), metadata=meta)
            clock.advance(timedelta(days=8))
            # Lazily: before any timer ran, the quote reads as expired and cannot be accepted.
            seen = await quotes.GetQuote(pb.GetQuoteRequest(name=quote.name), metadata=meta)
            assert seen.status == pb.QUOTE_STATUS_EXPIRED
            refused = await expect_error(
                quotes.AcceptQuote(pb.AcceptQuoteRequest(name=quote.name), metadata=meta),
                grpc.StatusCode.FAILED_PRECONDITION,
            )
            assert refused.reason == "QUOTE_EXPIRED"

            # Durably: the timer SendQuote scheduled stores the EXPIRED status.
            app = next(s for _, s in running.parts.servicers if isinstance(s, QuoteServicer))._app
            scheduler = TimerScheduler(
                app.db, app.uow_factory.tables, app.uow_factory, clock=clock, handlers=timer_handlers(app)
            )
            assert await scheduler.run_due() == 1
            expired = await quotes.ListQuotes(
                pb.ListQuotesRequest(
                    filter=f'status = QUOTE_STATUS_EXPIRED AND customer = "{quote.customer}"'
                ),
                metadata=meta,
            )
            assert [q.name for q in expired.quotes] == [quote.name]
            # An expired quote can be revised into a new draft.
            revised = await quotes.ReviseQuote(pb.ReviseQuoteRequest(name=quote.name), metadata=meta)
            assert (revised.status, revised.version) == (pb.QUOTE_STATUS_DRAFT, 2)
            assert not revised.HasField("valid_until")  # the old validity is over: set a new one to send
    finally:
        await running.stop(1)
