"""The customer area through the real NATS stream CRM_CUSTOMER, on SQLite and PostgreSQL:
snapshots (older ones ignored), contacts (a delete before its create stays deleted), follow-ups,
behaviour, ownership, merge; a redelivered event changes nothing; the status row counts events."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from crm.common.v1 import money_pb2
from crm.customer.v1 import (
    behavior_events_pb2,
    customer_pb2,
    data_events_pb2,
    events_pb2,
    follow_up_service_pb2,
    pool_events_pb2,
    pool_service_pb2,
)
from crm_reporting.adapters.customer_repository import CustomerRepository
from crm_reporting.adapters.projection_tables import projection_status
from crm_reporting.consumers import ProjectionConsumer
from crm_reporting.service import timeline
from crm_shared.events.envelope import build_envelope, serialize_envelope
from crm_shared.ids import new_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

WAIT_SECONDS = 30.0
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def the_app(reporting_service):
    return next(w for w in reporting_service.parts.workers if isinstance(w, ProjectionConsumer)).app


def customer_name() -> str:
    return f"customers/{uuid.uuid4()}"


def ts(when: datetime):
    from google.protobuf.timestamp_pb2 import Timestamp

    out = Timestamp()
    out.FromDatetime(when)
    return out


async def publish(
    js,
    source: str,
    subject: str,
    payload,
    resource: str,
    *,
    event_id: str | None = None,
    when: datetime | None = None,
    actor: str = "alice",
) -> str:
    """Publish like the producer's outbox relay; the same event_id under a new msg id is a redelivery."""
    event_id = event_id or new_id()
    envelope = build_envelope(
        event_id=event_id,
        payload=payload,
        source=source,
        subject=resource,
        occurred_at=when or datetime.now(UTC),
        actor_subject=actor,
    )
    await js.publish(subject, serialize_envelope(envelope), headers={"Nats-Msg-Id": new_id()})
    return event_id


async def eventually(check, seconds: float = WAIT_SECONDS):
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.05)


async def applied(app, event_id: str, *, consumer: str | None = None) -> bool:
    """True once the event's inbox row is there (the barrier: consumers apply a stream in order)."""
    inbox = app.uow_factory.tables.inbox
    stmt = sa.select(inbox.c.event_id).where(inbox.c.event_id == event_id)
    if consumer:
        stmt = stmt.where(inbox.c.consumer == consumer)
    async with app.db.read_session() as session:
        return (await session.execute(stmt)).first() is not None


async def wait_applied(app, event_id: str) -> None:
    assert await eventually(lambda: applied(app, event_id)), f"event {event_id} was not applied"


def snapshot(
    name: str, *, updated: datetime, owner="rita", team="east", tier=customer_pb2.CUSTOMER_TIER_B, **kw
):
    return events_pb2.CustomerSnapshot(
        name=name,
        kind=kw.pop("kind", customer_pb2.CUSTOMER_KIND_COMPANY),
        display_name=kw.pop("display_name", "Acme GmbH"),
        industry=kw.pop("industry", "machinery"),
        source=kw.pop("source", "web"),
        tier=tier,
        lifecycle_stage=kw.pop("lifecycle_stage", customer_pb2.LIFECYCLE_STAGE_PROSPECT),
        tags=kw.pop("tags", ["b2b"]),
        owner=owner,
        team=team,
        create_time=ts(T0),
        update_time=ts(updated),
    )


async def create_customer(js, name: str, **kw) -> str:
    return await publish(
        js,
        "customer",
        "crm.customer.customer.created",
        events_pb2.CustomerCreated(customer=snapshot(name, updated=T0, **kw)),
        name,
        when=T0,
    )


async def test_customer_events_build_the_read_model(reporting_service):
    app, js = the_app(reporting_service), reporting_service.infrastructure.js
    acme, person = customer_name(), customer_name()
    await create_customer(js, acme)
    await create_customer(
        js, person, kind=customer_pb2.CUSTOMER_KIND_PERSON, display_name="Jane Roe", owner="rob", team="west"
    )
    # A newer snapshot, then an older one arriving late (ignored).
    newer = snapshot(
        acme, updated=T0 + timedelta(hours=2), tier=customer_pb2.CUSTOMER_TIER_A, tags=["b2b", "vip"]
    )
    await publish(
        js, "customer", "crm.customer.customer.updated", events_pb2.CustomerUpdated(customer=newer), acme
    )
    older = snapshot(acme, updated=T0 + timedelta(hours=1), tier=customer_pb2.CUSTOMER_TIER_C, owner="old")
    await publish(
        js, "customer", "crm.customer.customer.updated", events_pb2.CustomerUpdated(customer=older), acme
    )
    # Contacts: two created, one deleted; a delete arriving before its create stays deleted.
    for contact in ("c1", "c2"):
        await publish(
            js,
            "customer",
            "crm.customer.contact.created",
            events_pb2.ContactCreated(
                contact=events_pb2.ContactSnapshot(name=f"{acme}/contacts/{contact}", customer=acme)
            ),
            acme,
        )
    await publish(
        js,
        "customer",
        "crm.customer.contact.deleted",
        events_pb2.ContactDeleted(contact=f"{acme}/contacts/c2", customer=acme),
        acme,
    )
    await publish(
        js,
        "customer",
        "crm.customer.contact.deleted",
        events_pb2.ContactDeleted(contact=f"{acme}/contacts/c3", customer=acme),
        acme,
    )
    await publish(
        js,
        "customer",
        "crm.customer.contact.created",
        events_pb2.ContactCreated(
            contact=events_pb2.ContactSnapshot(name=f"{acme}/contacts/c3", customer=acme)
        ),
        acme,
    )
    # Follow-ups: the later one first.
    for day, next_day in ((5, 12), (3, 4)):
        await publish(
            js,
            "customer",
            "crm.customer.follow_up.logged",
            pool_events_pb2.FollowUpLogged(
                follow_up=f"{acme}/followUps/{day}",
                customer=acme,
                type=follow_up_service_pb2.FOLLOW_UP_TYPE_CALL,
                author="rita",
                follow_up_time=ts(T0 + timedelta(days=day)),
                next_follow_up_time=ts(T0 + timedelta(days=next_day)),
            ),
            acme,
        )
    purchase = await publish(
        js,
        "customer",
        "crm.customer.behavior.purchase",
        behavior_events_pb2.PurchaseMade(
            customer=acme,
            value=money_pb2.Money(currency_code="EUR", amount_minor=12_500),
            items_count=2,
            occur_time=ts(T0 + timedelta(days=6)),
        ),
        acme,
    )
    # The relay sent it again (same event id, new msg id): counted once.
    await publish(
        js,
        "customer",
        "crm.customer.behavior.purchase",
        behavior_events_pb2.PurchaseMade(customer=acme, occur_time=ts(T0 + timedelta(days=6))),
        acme,
        event_id=purchase,
    )
    await publish(
        js,
        "customer",
        "crm.customer.behavior.cart_abandoned",
        behavior_events_pb2.CartAbandoned(
            customer=acme, occur_time=ts(T0 + timedelta(days=7)), items_count=1
        ),
        acme,
    )
    # Ownership: a newer change, then an older one (ignored).
    await publish(
        js,
        "customer",
        "crm.customer.customer.assigned",
        pool_events_pb2.OwnershipChanged(
            customer=acme,
            reason=pool_service_pb2.OWNERSHIP_CHANGE_REASON_ASSIGNED,
            from_owner="rita",
            to_owner="rob",
            from_team="east",
            to_team="east",
            change_time=ts(T0 + timedelta(days=8)),
        ),
        acme,
    )
    last = await publish(
        js,
        "customer",
        "crm.customer.customer.assigned",
        pool_events_pb2.OwnershipChanged(
            customer=acme, to_owner="stale", to_team="west", change_time=ts(T0 + timedelta(days=1))
        ),
        acme,
    )
    await wait_applied(app, last)

    async with app.db.read_session() as session:
        row = await CustomerRepository(session).get(acme)
        jane = await CustomerRepository(session).get(person)
        entries = await timeline.entries(session, acme)
        status = (
            await session.execute(
                sa.select(projection_status).where(projection_status.c.consumer == "reporting-customer")
            )
        ).one()
    assert (row.tier, row.tags, row.kind, row.display_name, row.industry) == (
        "A",
        ["b2b", "vip"],
        "company",
        "Acme GmbH",
        "machinery",
    )
    assert (row.owner, row.team) == ("rob", "east")
    assert row.contacts == 1  # c1 (c2 deleted, c3 deleted before created)
    assert row.last_follow_up_time == T0 + timedelta(days=5)
    assert row.next_follow_up_time == T0 + timedelta(days=12)
    assert (row.purchases, row.abandoned_carts) == (1, 1)
    assert row.last_purchase_time == T0 + timedelta(days=6)
    assert row.last_activity_time == T0 + timedelta(days=7)
    assert jane.display_name == "" and jane.kind == "person"  # nothing personal kept
    kinds = [e.kind for e in entries]
    assert kinds == [
        "ownership_changed",
        "cart_abandoned",
        "purchase",
        "follow_up",
        "follow_up",
        "ownership_changed",
        "customer_created",
    ]
    purchase_entry = next(e for e in entries if e.kind == "purchase")
    assert (purchase_entry.currency, purchase_entry.amount_minor) == ("EUR", 12_500)
    assert all("Jane" not in e.summary for e in entries)
    assert status.applied_events >= 15 and status.last_applied_time is not None


async def test_merge_moves_the_losers_to_the_survivor(reporting_service):
    app, js = the_app(reporting_service), reporting_service.infrastructure.js
    survivor, loser = customer_name(), customer_name()
    await create_customer(js, survivor)
    await create_customer(js, loser)
    for customer in (survivor, loser, loser):
        await publish(
            js,
            "customer",
            "crm.customer.behavior.purchase",
            behavior_events_pb2.PurchaseMade(customer=customer, occur_time=ts(T0 + timedelta(days=2))),
            customer,
        )
    await publish(
        js,
        "customer",
        "crm.customer.contact.created",
        events_pb2.ContactCreated(
            contact=events_pb2.ContactSnapshot(name=f"{loser}/contacts/x", customer=loser)
        ),
        loser,
    )
    merged = await publish(
        js,
        "customer",
        "crm.customer.customer.merged",
        data_events_pb2.CustomerMerged(survivor=survivor, losers=[loser]),
        survivor,
    )
    await wait_applied(app, merged)
    async with app.db.read_session() as session:
        repo = CustomerRepository(session)
        kept, gone = await repo.get(survivor), await repo.get(loser)
        entries = await timeline.entries(session, survivor, limit=100)
        loser_entries = await timeline.entries(session, loser)
    assert (kept.purchases, kept.contacts) == (3, 1)
    assert gone.deleted and gone.merged_into == survivor and gone.purchases == 0
    assert sorted(e.kind for e in entries).count("purchase") == 3
    assert loser_entries == []
