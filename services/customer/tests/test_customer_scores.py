"""CustomerScored (crm.reporting.customer.scored, published to the real NATS stream CRM_REPORTING)
sets the customer's tier from the ABC class and its health score, on SQLite and PostgreSQL:
CustomerUpdated is published for a change, a redelivery or an older score changes nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf import field_mask_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from crm.customer.v1 import customer_pb2 as pb
from crm.customer.v1 import customer_service_pb2 as rpc
from crm.customer.v1 import events_pb2 as customer_events_pb
from crm.reporting.v1 import common_pb2 as reporting_common
from crm.reporting.v1 import events_pb2 as reporting_pb
from crm_customer.consumers import SUBJECT_CUSTOMER_SCORED
from crm_shared.events.envelope import build_envelope, serialize_envelope, unpack_payload
from crm_shared.ids import new_id
from crm_shared.testing.events import stream_envelopes

pytestmark = pytest.mark.asyncio(loop_scope="session")

WAIT_SECONDS = 20.0
T = datetime(2026, 11, 1, tzinfo=UTC)


def scored(customer: str, abc: int, health: int, at: datetime) -> reporting_pb.CustomerScored:
    compute_time = Timestamp()
    compute_time.FromDatetime(at)
    return reporting_pb.CustomerScored(
        customer=customer,
        abc_class=abc,
        rfm_segment="loyal",
        health_score=health,
        churn_risk=reporting_common.CHURN_RISK_LOW,
        factors=[
            reporting_pb.ScoreFactor(name="recency", value=3, impact=10, explanation="3 days ago (+10)")
        ],
        compute_time=compute_time,
    )


async def publish(js, payload, *, event_id: str | None = None) -> str:
    event_id = event_id or new_id()
    envelope = build_envelope(
        event_id=event_id,
        payload=payload,
        source="reporting",
        subject=payload.customer,
        occurred_at=datetime.now(UTC),
        actor_subject="service:reporting",
    )
    await js.publish(SUBJECT_CUSTOMER_SCORED, serialize_envelope(envelope), headers={"Nats-Msg-Id": new_id()})
    return event_id


async def eventually(check, seconds: float = WAIT_SECONDS):
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.1)


async def updates(js, customer: str) -> list[customer_events_pb.CustomerUpdated]:
    return [
        unpack_payload(envelope, customer_events_pb.CustomerUpdated)
        for _, envelope in await stream_envelopes(js, "CRM_CUSTOMER", "crm.customer.customer.updated")
        if envelope.subject == customer
    ]


async def test_a_score_sets_tier_and_health_once_and_older_scores_are_ignored(
    customer_service, stub, as_user
):
    js = customer_service.infrastructure.js
    admin = as_user("admin", "root")
    created = await stub.CreateCustomer(
        rpc.CreateCustomerRequest(
            customer=pb.Customer(kind=pb.CUSTOMER_KIND_COMPANY, display_name="Scored Ltd")
        ),
        metadata=admin,
    )

    async def customer_with(tier, health):
        current = await stub.GetCustomer(rpc.GetCustomerRequest(name=created.name), metadata=admin)
        return current if (current.tier, current.health_score) == (tier, health) else None

    first = scored(created.name, reporting_common.ABC_CLASS_A, 82, T)
    event_id = await publish(js, first)
    current = await eventually(lambda: customer_with(pb.CUSTOMER_TIER_A, 82))
    assert current, "the score was not applied"
    [update] = await eventually(lambda: updates(js, created.name))
    assert sorted(update.changed_fields) == ["health_score", "tier"]
    assert update.customer.tier == pb.CUSTOMER_TIER_A

    # Redelivery of the same event, and an older score arriving late: nothing changes.
    await publish(js, first, event_id=event_id)
    await publish(js, scored(created.name, reporting_common.ABC_CLASS_C, 10, T - timedelta(days=1)))
    # A newer score moves tier and health again.
    await publish(js, scored(created.name, reporting_common.ABC_CLASS_B, 55, T + timedelta(days=1)))
    current = await eventually(lambda: customer_with(pb.CUSTOMER_TIER_B, 55))
    assert current, "the newer score was not applied"
    # The same values again, newer: no change, no event.
    await publish(js, scored(created.name, reporting_common.ABC_CLASS_B, 55, T + timedelta(days=2)))
    await asyncio.sleep(1.0)
    published = await updates(js, created.name)
    assert [(u.customer.tier, sorted(u.changed_fields)) for u in published] == [
        (pb.CUSTOMER_TIER_A, ["health_score", "tier"]),
        (pb.CUSTOMER_TIER_B, ["health_score", "tier"]),
    ]
    final = await stub.GetCustomer(rpc.GetCustomerRequest(name=created.name), metadata=admin)
    assert (final.tier, final.health_score) == (pb.CUSTOMER_TIER_B, 55)


async def test_a_tier_chosen_by_a_person_wins_and_health_alone_keeps_the_etag(
    customer_service, stub, as_user
):
    js = customer_service.infrastructure.js
    admin = as_user("admin", "root")
    created = await stub.CreateCustomer(
        rpc.CreateCustomerRequest(
            customer=pb.Customer(
                kind=pb.CUSTOMER_KIND_COMPANY, display_name="Chosen Ltd", tier=pb.CUSTOMER_TIER_B
            )
        ),
        metadata=admin,
    )

    async def health_is(value):
        current = await stub.GetCustomer(rpc.GetCustomerRequest(name=created.name), metadata=admin)
        return current if current.health_score == value else None

    await publish(js, scored(created.name, reporting_common.ABC_CLASS_C, 40, T))
    current = await eventually(lambda: health_is(40))
    assert current, "the health score was not applied"
    # The person's tier stays; a background health change neither bumps the etag nor publishes.
    assert (current.tier, current.etag) == (pb.CUSTOMER_TIER_B, created.etag)
    assert await updates(js, created.name) == []

    # A tier first set by a score is pinned once a person writes it.
    unset = await stub.CreateCustomer(
        rpc.CreateCustomerRequest(
            customer=pb.Customer(kind=pb.CUSTOMER_KIND_COMPANY, display_name="Auto Ltd")
        ),
        metadata=admin,
    )
    await publish(js, scored(unset.name, reporting_common.ABC_CLASS_A, 80, T))

    async def tier_is(name, tier):
        current = await stub.GetCustomer(rpc.GetCustomerRequest(name=name), metadata=admin)
        return current if current.tier == tier else None

    scored_customer = await eventually(lambda: tier_is(unset.name, pb.CUSTOMER_TIER_A))
    assert scored_customer, "a score sets an unset tier"
    await stub.UpdateCustomer(
        rpc.UpdateCustomerRequest(
            customer=pb.Customer(name=unset.name, tier=pb.CUSTOMER_TIER_A, etag=scored_customer.etag),
            update_mask=field_mask_pb2.FieldMask(paths=["tier"]),
        ),
        metadata=admin,
    )
    await publish(js, scored(unset.name, reporting_common.ABC_CLASS_C, 20, T + timedelta(days=1)))
    assert await eventually(lambda: health_is_of(stub, admin, unset.name, 20)), "health still follows"
    final = await stub.GetCustomer(rpc.GetCustomerRequest(name=unset.name), metadata=admin)
    assert final.tier == pb.CUSTOMER_TIER_A


async def health_is_of(stub, metadata, name: str, value: int):
    current = await stub.GetCustomer(rpc.GetCustomerRequest(name=name), metadata=metadata)
    return current if current.health_score == value else None
