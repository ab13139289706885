"""GetCustomer360 over gRPC on both databases: profile, behaviour and timeline (newest first, limited)
from the events, as_of, and the caller's scope (NOT_FOUND outside it, for unknown and deleted)."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest
from test_customer_projection import (
    T0,
    create_customer,
    customer_name,
    publish,
    the_app,
    ts,
    wait_applied,
)

from crm.common.v1 import money_pb2
from crm.customer.v1 import behavior_events_pb2, events_pb2, follow_up_service_pb2, pool_events_pb2
from crm.reporting.v1 import customer_insight_service_pb2 as pb
from crm.reporting.v1 import customer_insight_service_pb2_grpc as pb_grpc

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def history(js, customer: str) -> str:
    await create_customer(js, customer, owner="rita", team="east")
    for day in range(1, 6):
        await publish(
            js,
            "customer",
            "crm.customer.follow_up.logged",
            pool_events_pb2.FollowUpLogged(
                follow_up=f"{customer}/followUps/{day}",
                customer=customer,
                type=follow_up_service_pb2.FOLLOW_UP_TYPE_VISIT,
                author="rita",
                follow_up_time=ts(T0 + timedelta(days=day)),
            ),
            customer,
            when=T0 + timedelta(days=day),
        )
    return await publish(
        js,
        "customer",
        "crm.customer.behavior.purchase",
        behavior_events_pb2.PurchaseMade(
            customer=customer,
            value=money_pb2.Money(currency_code="EUR", amount_minor=9_900),
            items_count=3,
            occur_time=ts(T0 + timedelta(days=10)),
        ),
        customer,
        when=T0 + timedelta(days=10, minutes=1),
    )


async def test_customer_360_shows_profile_behaviour_and_timeline(reporting_service, channel, as_user):
    app, js = the_app(reporting_service), reporting_service.infrastructure.js
    customer = customer_name()
    await wait_applied(app, await history(js, customer))
    stub = pb_grpc.CustomerInsightServiceStub(channel)

    view = await stub.GetCustomer360(
        pb.GetCustomer360Request(customer=customer, timeline_limit=3),
        metadata=as_user("sales_rep", "rita", "east"),
    )
    assert view.customer == customer
    p = view.profile
    assert (p.display_name, p.kind, p.industry, p.tier, p.lifecycle_stage, p.owner, p.team, list(p.tags)) == (
        "Acme GmbH",
        "company",
        "machinery",
        "B",
        "prospect",
        "rita",
        "east",
        ["b2b"],
    )
    assert p.last_follow_up_time.ToDatetime().replace(tzinfo=T0.tzinfo) == T0 + timedelta(days=5)
    assert p.last_activity_time.ToDatetime().replace(tzinfo=T0.tzinfo) == T0 + timedelta(days=10)
    assert (view.purchases, view.abandoned_carts) == (1, 0)
    # Newest first, limited to 3.
    assert [e.kind for e in view.timeline] == ["purchase", "follow_up", "follow_up"]
    assert view.timeline[0].amount == money_pb2.Money(currency_code="EUR", amount_minor=9_900)
    assert view.timeline[1].resource == f"{customer}/followUps/5" and view.timeline[1].actor == "rita"
    assert view.as_of.ToDatetime().replace(tzinfo=T0.tzinfo) == T0 + timedelta(days=10, minutes=1)
    # No other area has facts for this customer: empty summaries, not errors.
    assert (view.open_opportunities, view.active_contracts, view.open_tickets) == (0, 0, 0)
    assert list(view.lifetime_value) == []

    full = await stub.GetCustomer360(pb.GetCustomer360Request(customer=customer), metadata=as_user("admin"))
    assert [e.kind for e in full.timeline] == ["purchase", *["follow_up"] * 5, "customer_created"]
    manager = await stub.GetCustomer360(
        pb.GetCustomer360Request(customer=customer), metadata=as_user("sales_manager", "mia", "east")
    )
    assert manager.profile.owner == "rita"


@pytest.mark.parametrize(
    ("role", "subject", "team"),
    [("sales_rep", "rob", "east"), ("sales_manager", "wes", "west")],
)
async def test_customer_360_outside_the_scope_is_not_found(
    reporting_service, channel, as_user, role, subject, team
):
    app, js = the_app(reporting_service), reporting_service.infrastructure.js
    customer = customer_name()
    await wait_applied(app, await create_customer(js, customer, owner="rita", team="east"))
    stub = pb_grpc.CustomerInsightServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetCustomer360(
            pb.GetCustomer360Request(customer=customer), metadata=as_user(role, subject, team)
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_unknown_and_deleted_customers_are_not_found(reporting_service, channel, as_user):
    app, js = the_app(reporting_service), reporting_service.infrastructure.js
    stub = pb_grpc.CustomerInsightServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetCustomer360(
            pb.GetCustomer360Request(customer=customer_name()), metadata=as_user("admin")
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    customer = customer_name()
    await create_customer(js, customer)
    deleted = await publish(
        js,
        "customer",
        "crm.customer.customer.deleted",
        events_pb2.CustomerDeleted(customer=customer, owner="rita", team="east"),
        customer,
    )
    await wait_applied(app, deleted)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetCustomer360(pb.GetCustomer360Request(customer=customer), metadata=as_user("admin"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
