"""BehaviorService through a real gRPC channel, on SQLite and PostgreSQL, with real NATS.

What an integration notices when it streams events in (matching, duplicates,
unmatched and rejected events, errors naming the bad event) and what CRM users
see afterwards (summaries, event lists, lifecycle stage, events on the stream).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from crm.common.v1 import money_pb2
from crm.customer.v1 import behavior_events_pb2 as bpb
from crm.customer.v1 import behavior_service_pb2 as brpc
from crm.customer.v1 import behavior_service_pb2_grpc as brpc_grpc
from crm.customer.v1 import customer_pb2 as pb
from crm.customer.v1 import customer_service_pb2 as rpc
from crm.customer.v1 import events_pb2
from crm_shared.grpc.status import error_details
from crm_shared.testing.events import wait_for_envelopes
from crm_shared.testing.fixtures_nats import connect_nats

pytestmark = pytest.mark.asyncio(loop_scope="session")

T = bpb.BehaviorEventType
BASE = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def behavior(channel):
    return brpc_grpc.BehaviorServiceStub(channel)


def ts(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def event(
    event_id: str, kind: int = T.BEHAVIOR_EVENT_TYPE_PAGE_VIEW, *, at: datetime = BASE, source="web", **fields
):
    properties = fields.pop("properties", None)
    message = bpb.BehaviorEvent(event_id=event_id, source=source, type=kind, occur_time=ts(at), **fields)
    if properties is not None:
        message.properties.CopyFrom(properties)
    return message


def cny(amount_minor: int, currency: str = "CNY") -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, amount_minor=amount_minor)


async def ingest(behavior, events, metadata) -> brpc.IngestBehaviorEventsResponse:
    async def stream():
        for item in events:
            yield item

    return await behavior.IngestBehaviorEvents(stream(), metadata=metadata)


async def expect_error(call, code: grpc.StatusCode):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    details = error_details(caught.value)
    assert details.code == code, f"{details.code} {details.message}"
    return details


async def new_customer(stub, metadata, **fields) -> pb.Customer:
    return await stub.CreateCustomer(
        rpc.CreateCustomerRequest(customer=pb.Customer(display_name="Shopper", **fields)), metadata=metadata
    )


async def summary_of(behavior, customer: pb.Customer, metadata) -> bpb.BehaviorSummary:
    return await behavior.GetBehaviorSummary(
        brpc.GetBehaviorSummaryRequest(name=f"{customer.name}/behaviorSummary"), metadata=metadata
    )


def counts(summary: bpb.BehaviorSummary) -> dict[str, int]:
    return {T.Name(s.type).removeprefix("BEHAVIOR_EVENT_TYPE_").lower(): s.count for s in summary.type_stats}


async def test_events_match_by_name_contact_email_and_phone_in_normalized_form(stub, behavior, as_user):
    admin, feed = as_user("admin", "root"), as_user("integration", "web-shop", "")
    acme = await new_customer(
        stub,
        admin,
        email_addresses=[pb.EmailAddress(address="sales@acme.com")],
        phone_numbers=[pb.PhoneNumber(number="13800138000")],
    )
    beta = await new_customer(stub, admin)
    buyer = await stub.CreateContact(
        rpc.CreateContactRequest(
            parent=beta.name,
            contact=pb.Contact(
                display_name="Buyer",
                email_addresses=[pb.EmailAddress(address="Buyer@Beta.example")],
                phone_numbers=[pb.PhoneNumber(number="139 0013 9000")],
            ),
        ),
        metadata=admin,
    )
    future = datetime.now(UTC) + timedelta(days=2)
    response = await ingest(
        behavior,
        [
            event("e0", customer=acme.name),
            event("e1", email="Sales@Acme.COM"),
            event("e2", phone="+86 138-0013-8000"),
            event("e3", contact=buyer.name),
            event("e4", email="BUYER@beta.example"),
            event("e5", phone="+86 139 0013 9000"),
            event("e6", email="nobody@nowhere.example"),
            event("e7", customer=f"customers/{uuid.uuid4()}"),
            event("e8", phone="+86 137 0000 0000"),
            event("e9", email="not-an-email"),
            event("e10", customer=acme.name, at=future),
            event("e11", contact=f"{beta.name}/contacts/{uuid.uuid4()}"),
        ],
        feed,
    )
    assert (response.accepted, response.duplicates, response.unmatched, response.rejected) == (6, 0, 4, 2)
    assert [(i.index, i.event_id, i.reason, i.field, i.rejected) for i in response.issues] == [
        (6, "e6", "UNMATCHED_EMAIL", "email", False),
        (7, "e7", "UNMATCHED_CUSTOMER", "customer", False),
        (8, "e8", "UNMATCHED_PHONE", "phone", False),
        (9, "e9", "INVALID_EMAIL", "email", True),
        (10, "e10", "OCCUR_TIME_IN_FUTURE", "occur_time", True),
        (11, "e11", "UNMATCHED_CONTACT", "contact", False),
    ]

    acme_events = await behavior.ListBehaviorEvents(
        brpc.ListBehaviorEventsRequest(parent=acme.name), metadata=admin
    )
    assert sorted(e.event_id for e in acme_events.behavior_events) == ["e0", "e1", "e2"]
    assert {e.customer for e in acme_events.behavior_events} == {acme.name}
    beta_events = await behavior.ListBehaviorEvents(
        brpc.ListBehaviorEventsRequest(parent=beta.name), metadata=admin
    )
    # Matched through the contact's blind-indexed email/phone: linked to the contact, not just the customer.
    assert sorted((e.event_id, e.contact) for e in beta_events.behavior_events) == [
        ("e3", buyer.name),
        ("e4", buyer.name),
        ("e5", buyer.name),
    ]
    assert (await summary_of(behavior, acme, admin)).total_events == 3


async def test_resent_events_are_counted_once_across_streams(stub, behavior, as_user):
    admin, feed = as_user("admin", "root"), as_user("integration", "web-shop", "")
    customer = await new_customer(stub, admin)
    first = [event(f"view-{i}", customer=customer.name, at=BASE + timedelta(seconds=i)) for i in range(700)]
    response = await ingest(behavior, first, feed)
    assert (response.accepted, response.duplicates) == (700, 0)

    # A retry of the whole stream plus ten new events, and one event twice within the stream.
    again = [*first, *(event(f"view-{i}", customer=customer.name) for i in range(700, 710)), first[5]]
    response = await ingest(behavior, again, feed)
    assert (response.accepted, response.duplicates) == (10, 701)

    # The same (source, event_id) from another source is another event.
    response = await ingest(behavior, [event("view-1", source="app", customer=customer.name)], feed)
    assert (response.accepted, response.duplicates) == (1, 0)

    # Two streams racing with the same new events: each event is stored exactly once.
    racing = [event(f"race-{i}", customer=customer.name) for i in range(600)]
    one, two = await asyncio.gather(ingest(behavior, racing, feed), ingest(behavior, racing, feed))
    assert one.accepted + two.accepted == 600
    assert one.duplicates + two.duplicates == 600

    summary = await summary_of(behavior, customer, admin)
    assert summary.total_events == 700 + 10 + 1 + 600
    assert counts(summary) == {"page_view": 1311}


async def test_summary_counts_last_times_and_purchase_totals(stub, behavior, as_user):
    admin = as_user("admin", "root")
    customer = await new_customer(stub, admin)
    name = customer.name
    latest = BASE + timedelta(days=3)
    events = [
        event(
            "a",
            T.BEHAVIOR_EVENT_TYPE_PAGE_VIEW,
            customer=name,
            at=BASE,
            properties=bpb.BehaviorProperties(url="https://shop.example/", attributes={"utm_source": "mail"}),
        ),
        event("b", T.BEHAVIOR_EVENT_TYPE_PAGE_VIEW, customer=name, at=latest),
        event(
            "c", T.BEHAVIOR_EVENT_TYPE_PAGE_VIEW, customer=name, at=BASE + timedelta(days=1)
        ),  # out of order
        event(
            "d",
            T.BEHAVIOR_EVENT_TYPE_PRODUCT_VIEW,
            customer=name,
            properties=bpb.BehaviorProperties(product_sku="SKU-1"),
        ),
        event(
            "e",
            T.BEHAVIOR_EVENT_TYPE_CART_ADD,
            customer=name,
            properties=bpb.BehaviorProperties(value=cny(999)),
        ),
        event(
            "f",
            T.BEHAVIOR_EVENT_TYPE_CART_ABANDONED,
            customer=name,
            properties=bpb.BehaviorProperties(value=cny(999), items_count=1),
        ),
        event("g", T.BEHAVIOR_EVENT_TYPE_CART_ABANDONED, customer=name),
        event(
            "h",
            T.BEHAVIOR_EVENT_TYPE_PURCHASE,
            customer=name,
            properties=bpb.BehaviorProperties(value=cny(1000)),
        ),
        event(
            "i",
            T.BEHAVIOR_EVENT_TYPE_PURCHASE,
            customer=name,
            properties=bpb.BehaviorProperties(value=cny(2500)),
        ),
        event(
            "j",
            T.BEHAVIOR_EVENT_TYPE_PURCHASE,
            customer=name,
            properties=bpb.BehaviorProperties(value=cny(700, "USD")),
        ),
        event(
            "k",
            T.BEHAVIOR_EVENT_TYPE_EMAIL_OPEN,
            customer=name,
            properties=bpb.BehaviorProperties(campaign_id="nov"),
        ),
        event("l", T.BEHAVIOR_EVENT_TYPE_EMAIL_CLICK, customer=name),
    ]
    response = await ingest(behavior, events, as_user("integration", "web-shop", ""))
    assert response.accepted == 12

    summary = await summary_of(behavior, customer, admin)
    assert summary.name == f"{name}/behaviorSummary"
    assert counts(summary) == {
        "page_view": 3, "product_view": 1, "cart_add": 1, "cart_abandoned": 2,
        "purchase": 3, "email_open": 1, "email_click": 1,
    }  # fmt: skip
    assert (summary.total_events, summary.purchase_count, summary.cart_abandoned_count) == (12, 3, 2)
    assert sorted((m.currency_code, m.amount_minor) for m in summary.purchase_totals) == [
        ("CNY", 3500),
        ("USD", 700),
    ]
    page_view = next(s for s in summary.type_stats if s.type == T.BEHAVIOR_EVENT_TYPE_PAGE_VIEW)
    assert page_view.last_time.ToDatetime(UTC) == latest
    assert summary.last_activity_time.ToDatetime(UTC) == latest

    # Properties come back as sent; the list pages newest first and filters by type and time.
    purchases = await behavior.ListBehaviorEvents(
        brpc.ListBehaviorEventsRequest(parent=name, filter="type = BEHAVIOR_EVENT_TYPE_PURCHASE"),
        metadata=admin,
    )
    assert sorted(e.properties.value.amount_minor for e in purchases.behavior_events) == [700, 1000, 2500]
    seen, token = [], ""
    while True:
        page = await behavior.ListBehaviorEvents(
            brpc.ListBehaviorEventsRequest(
                parent=name, page_size=2, page_token=token, filter="type = BEHAVIOR_EVENT_TYPE_PAGE_VIEW"
            ),
            metadata=admin,
        )
        seen.extend(page.behavior_events)
        token = page.next_page_token
        if not token:
            break
    assert [e.event_id for e in seen] == ["b", "c", "a"]
    assert seen[2].properties.url == "https://shop.example/"
    assert dict(seen[2].properties.attributes) == {"utm_source": "mail"}
    recent = await behavior.ListBehaviorEvents(
        brpc.ListBehaviorEventsRequest(
            parent=name, filter=f'occur_time > "{(BASE + timedelta(hours=1)).isoformat()}"'
        ),
        metadata=admin,
    )
    assert sorted(e.event_id for e in recent.behavior_events) == ["b", "c"]
    bad = await expect_error(
        behavior.ListBehaviorEvents(
            brpc.ListBehaviorEventsRequest(parent=name, filter="colour = 1"), metadata=admin
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "colour" in bad.message


async def test_cart_abandoned_and_purchases_are_published_and_make_the_customer_loyal(
    stub, behavior, as_user, nats_server
):
    admin, feed = as_user("admin", "root"), as_user("integration", "web-shop", "")
    customer = await new_customer(
        stub, admin, email_addresses=[pb.EmailAddress(address="loyal@shop.example")]
    )
    assert customer.lifecycle_stage == pb.LIFECYCLE_STAGE_PROSPECT

    def purchase(n: int):
        return event(
            f"order-{n}",
            T.BEHAVIOR_EVENT_TYPE_PURCHASE,
            email="Loyal@Shop.example",
            at=BASE + timedelta(days=n),
            properties=bpb.BehaviorProperties(value=cny(1000 * n), items_count=n, order_id=f"SO-{n}"),
        )

    abandoned = event(
        "cart-1",
        T.BEHAVIOR_EVENT_TYPE_CART_ABANDONED,
        email="loyal@shop.example",
        properties=bpb.BehaviorProperties(value=cny(4200), items_count=3, campaign_id="black-friday"),
    )
    await ingest(behavior, [abandoned, purchase(1)], feed)
    after_first = await stub.GetCustomer(rpc.GetCustomerRequest(name=customer.name), metadata=admin)
    assert after_first.lifecycle_stage == pb.LIFECYCLE_STAGE_ACTIVE
    await ingest(behavior, [purchase(2)], feed)
    await ingest(behavior, [purchase(2), purchase(3)], feed)  # a re-sent purchase does not count twice
    loyal = await stub.GetCustomer(rpc.GetCustomerRequest(name=customer.name), metadata=admin)
    assert loyal.lifecycle_stage == pb.LIFECYCLE_STAGE_LOYAL
    assert loyal.etag != after_first.etag  # the stage change is a new version

    nc = await connect_nats(nats_server.url)
    try:
        js = nc.jetstream()
        carts = await wait_for_envelopes(
            js, "CRM_CUSTOMER", subject="crm.customer.behavior.cart_abandoned", resource=customer.name
        )
        purchases = await wait_for_envelopes(
            js, "CRM_CUSTOMER", subject="crm.customer.behavior.purchase", resource=customer.name, count=3
        )
        updates = await wait_for_envelopes(
            js, "CRM_CUSTOMER", subject="crm.customer.customer.updated", resource=customer.name, count=2
        )
    finally:
        await nc.close()
    assert len(carts) == 1 and len(purchases) == 3
    cart = bpb.CartAbandoned()
    carts[0].payload.Unpack(cart)
    assert (cart.customer, cart.cart_value.amount_minor, cart.items_count, cart.campaign_id) == (
        customer.name,
        4200,
        3,
        "black-friday",
    )
    made = []
    for envelope in purchases:
        payload = bpb.PurchaseMade()
        envelope.payload.Unpack(payload)
        made.append(
            (payload.order_id and payload.event_id, payload.value.amount_minor, payload.purchase_count)
        )
    assert made == [("order-1", 1000, 1), ("order-2", 2000, 2), ("order-3", 3000, 3)]
    stages = []
    for envelope in updates:
        payload = events_pb2.CustomerUpdated()
        envelope.payload.Unpack(payload)
        assert list(payload.changed_fields) == ["lifecycle_stage"]
        stages.append(payload.customer.lifecycle_stage)
    assert stages == [pb.LIFECYCLE_STAGE_ACTIVE, pb.LIFECYCLE_STAGE_LOYAL]
    for envelope in [*carts, *purchases, *updates]:  # matched by email, yet no email in any event
        assert b"loyal@shop.example" not in envelope.SerializeToString().lower()


async def test_invalid_events_name_the_field_and_the_event_index(stub, behavior, as_user):
    admin, feed = as_user("admin", "root"), as_user("integration", "web-shop", "")
    customer = await new_customer(stub, admin)
    good = [event(f"ok-{i}", customer=customer.name) for i in range(3)]

    missing_type = bpb.BehaviorEvent(event_id="bad", occur_time=ts(BASE), customer=customer.name)
    details = await expect_error(
        ingest(behavior, [*good, missing_type], feed), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert list(details.field_violations) == ["events[3].type"]
    assert "index 3" in details.message
    assert details.metadata["index"] == "3" and details.metadata["accepted"] == "3"

    too_long = event("long", customer=customer.name, properties=bpb.BehaviorProperties(url="x" * 3000))
    details = await expect_error(ingest(behavior, [too_long], feed), grpc.StatusCode.INVALID_ARGUMENT)
    assert list(details.field_violations) == ["events[0].properties.url"]

    negative = event("neg", customer=customer.name, properties=bpb.BehaviorProperties(value=cny(-5)))
    no_subject = bpb.BehaviorEvent(event_id="who", type=T.BEHAVIOR_EVENT_TYPE_PAGE_VIEW, occur_time=ts(BASE))
    details = await expect_error(
        ingest(behavior, [good[0], negative], feed), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert list(details.field_violations) == ["events[1].properties.value"]
    details = await expect_error(ingest(behavior, [no_subject], feed), grpc.StatusCode.INVALID_ARGUMENT)
    assert list(details.field_violations) == ["events[0].subject"]

    # The events before a bad one are stored, once (good[0] was re-sent above: a duplicate).
    summary = await summary_of(behavior, customer, admin)
    assert summary.total_events == 3


async def test_events_per_stream_are_limited(stub, behavior, as_user, monkeypatch):
    from crm_customer.service import behavior as use_cases

    monkeypatch.setattr(use_cases, "MAX_EVENTS_PER_STREAM", 5)
    admin = as_user("admin", "root")
    customer = await new_customer(stub, admin)
    details = await expect_error(
        ingest(behavior, [event(f"e{i}", customer=customer.name) for i in range(6)], admin),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )
    assert details.reason == "TOO_MANY_EVENTS_IN_STREAM"
    assert details.metadata["accepted"] == "5"  # the first five are stored; re-sending all six is safe
    assert (await summary_of(behavior, customer, admin)).total_events == 5
    monkeypatch.undo()
    again = await ingest(behavior, [event(f"e{i}", customer=customer.name) for i in range(6)], admin)
    assert (again.accepted, again.duplicates) == (1, 5)


async def test_reading_follows_customer_scope_and_only_integrations_ingest(stub, behavior, as_user):
    bob, carol = as_user("sales_rep", "bob", "east"), as_user("sales_rep", "carol", "east")
    customer = await new_customer(stub, bob)
    await ingest(behavior, [event("x", customer=customer.name)], as_user("integration", "web-shop", ""))

    assert (await summary_of(behavior, customer, bob)).total_events == 1
    assert (await summary_of(behavior, customer, as_user("marketing", "mia", "west"))).total_events == 1
    assert (await summary_of(behavior, customer, as_user("sales_manager", "max", "east"))).total_events == 1
    for outsider in (carol, as_user("sales_manager", "wes", "west")):
        await expect_error(summary_of(behavior, customer, outsider), grpc.StatusCode.NOT_FOUND)
        await expect_error(
            behavior.ListBehaviorEvents(
                brpc.ListBehaviorEventsRequest(parent=customer.name), metadata=outsider
            ),
            grpc.StatusCode.NOT_FOUND,
        )
    await expect_error(
        ingest(behavior, [event("y", customer=customer.name)], bob), grpc.StatusCode.PERMISSION_DENIED
    )
    # The integration role feeds events in but reads nothing back.
    await expect_error(
        summary_of(behavior, customer, as_user("integration", "web-shop", "")),
        grpc.StatusCode.PERMISSION_DENIED,
    )


async def test_contact_blind_index_follows_contact_updates_and_deletes(stub, behavior, as_user):
    from google.protobuf import field_mask_pb2

    admin = as_user("admin", "root")
    customer = await new_customer(stub, admin)
    contact = await stub.CreateContact(
        rpc.CreateContactRequest(
            parent=customer.name,
            contact=pb.Contact(
                display_name="Li", email_addresses=[pb.EmailAddress(address="li@old.example")]
            ),
        ),
        metadata=admin,
    )
    first = await ingest(behavior, [event("c1", email="li@old.example")], admin)
    assert first.accepted == 1

    updated = await stub.UpdateContact(
        rpc.UpdateContactRequest(
            contact=pb.Contact(
                name=contact.name,
                email_addresses=[pb.EmailAddress(address="Li@New.example")],
                etag=contact.etag,
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["email_addresses"]),
        ),
        metadata=admin,
    )
    moved = await ingest(
        behavior, [event("c2", email="li@old.example"), event("c3", email="li@new.example")], admin
    )
    assert (moved.accepted, [i.reason for i in moved.issues]) == (1, ["UNMATCHED_EMAIL"])

    await stub.DeleteContact(rpc.DeleteContactRequest(name=contact.name, etag=updated.etag), metadata=admin)
    gone = await ingest(behavior, [event("c4", email="li@new.example")], admin)
    assert (gone.accepted, gone.unmatched) == (0, 1)


async def test_a_merge_moves_events_and_rebuilds_both_summaries(stub, behavior, as_user, customer_service):
    """move_behavior is what a merge calls; rebuilt summaries equal the ones kept up incrementally."""
    from crm_customer.service.behavior import move_behavior

    admin = as_user("admin", "root")
    loser, survivor = await new_customer(stub, admin), await new_customer(stub, admin)
    kinds = [
        T.BEHAVIOR_EVENT_TYPE_PAGE_VIEW,
        T.BEHAVIOR_EVENT_TYPE_PURCHASE,
        T.BEHAVIOR_EVENT_TYPE_CART_ABANDONED,
    ]
    events = [
        event(
            f"{who}-{i}",
            kinds[i % 3],
            customer=customer.name,
            at=BASE + timedelta(hours=i),
            properties=bpb.BehaviorProperties(value=cny(100 * (i + 1))),
        )
        for who, customer in (("l", loser), ("s", survivor))
        for i in range(7)
    ]
    await ingest(behavior, events, admin)
    before = [await summary_of(behavior, c, admin) for c in (loser, survivor)]

    app = next(s for _, s in customer_service.parts.servicers if type(s).__name__ == "BehaviorServicer")._app
    async with app.uow_factory() as uow:
        await move_behavior(uow, app.deps, loser.name.split("/")[1], loser.name.split("/")[1])  # a no-op move
        await uow.commit()
    assert [await summary_of(behavior, c, admin) for c in (loser, survivor)] == before

    async with app.uow_factory() as uow:
        await move_behavior(uow, app.deps, loser.name.split("/")[1], survivor.name.split("/")[1])
        await uow.commit()
    emptied, merged = [await summary_of(behavior, c, admin) for c in (loser, survivor)]
    assert emptied.total_events == 0 and not emptied.purchase_totals
    assert merged.total_events == 14
    assert (merged.purchase_count, merged.cart_abandoned_count) == (
        before[0].purchase_count + before[1].purchase_count,
        before[0].cart_abandoned_count + before[1].cart_abandoned_count,
    )
    assert merged.purchase_totals[0].amount_minor == 2 * before[1].purchase_totals[0].amount_minor
    assert merged.last_activity_time == before[1].last_activity_time


async def test_issue_list_is_capped_but_every_event_is_counted(stub, behavior, as_user):
    admin = as_user("admin", "root")
    customer = await new_customer(stub, admin)
    events = [
        event(f"u{i}", email=f"stranger-{i}@nowhere.example")
        if i % 2
        else event(f"m{i}", customer=customer.name)
        for i in range(1300)
    ]
    response = await ingest(behavior, events, admin)
    assert (response.accepted, response.unmatched) == (650, 650)
    assert [i.index for i in response.issues] == list(range(1, 200, 2))


async def test_merge_customers_carries_the_losers_behaviour_into_the_survivors_summary(
    stub, behavior, as_user, channel
):
    from crm.customer.v1 import customer_data_service_pb2 as data_rpc
    from crm.customer.v1 import customer_data_service_pb2_grpc as data_grpc

    admin = as_user("admin", "root")
    loser, survivor = await new_customer(stub, admin), await new_customer(stub, admin)
    await ingest(
        behavior,
        [
            event(
                f"m-{who}-{i}",
                T.BEHAVIOR_EVENT_TYPE_PURCHASE,
                customer=customer.name,
                at=BASE + timedelta(hours=i),
                properties=bpb.BehaviorProperties(value=cny(1000)),
            )
            for who, customer in (("l", loser), ("s", survivor))
            for i in range(2)
        ],
        admin,
    )
    await data_grpc.CustomerDataServiceStub(channel).MergeCustomers(
        data_rpc.MergeCustomersRequest(survivor=survivor.name, losers=[loser.name]), metadata=admin
    )
    merged = await summary_of(behavior, survivor, admin)
    assert (merged.total_events, merged.purchase_count) == (4, 4)
    assert merged.purchase_totals[0].amount_minor == 4000
