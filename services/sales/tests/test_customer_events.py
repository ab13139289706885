"""Customer events (published to the real NATS stream CRM_CUSTOMER) applied by the sales service,
on SQLite and PostgreSQL: merges re-point every reference once, erasure shreds converted leads,
poison is dead-lettered."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from crm.common.v1 import money_pb2
from crm.customer.v1 import data_events_pb2 as data_events_pb
from crm.customer.v1 import events_pb2 as customer_events_pb
from crm.customer.v1 import privacy_events_pb2 as privacy_pb
from crm.sales.v1 import common_pb2
from crm.sales.v1 import lead_service_pb2 as lead_pb
from crm.sales.v1 import lead_service_pb2_grpc as lead_grpc
from crm.sales.v1 import opportunity_service_pb2 as opp_pb
from crm.sales.v1 import opportunity_service_pb2_grpc as opp_grpc
from crm_sales.adapters.lead_tables import lead_identifiers, lead_keys, leads
from crm_sales.adapters.opportunity_tables import opportunities
from crm_sales.adapters.quote_tables import orders, quotes
from crm_sales.consumers import CUSTOMER_CONSUMER, CustomerEventConsumer
from crm_shared.events.consumer import list_dead_letters
from crm_shared.events.envelope import build_envelope, serialize_envelope
from crm_shared.ids import new_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

WAIT_SECONDS = 20.0


def the_app(sales_service):
    [worker] = [w for w in sales_service.parts.workers if isinstance(w, CustomerEventConsumer)]
    return worker.app


def customer() -> str:
    return f"customers/{uuid.uuid4()}"


async def publish(
    js, subject: str, payload, *, event_id: str | None = None, msg_id: str | None = None
) -> str:
    event_id = event_id or new_id()
    envelope = build_envelope(
        event_id=event_id,
        payload=payload,
        source="customer",
        subject=getattr(payload, "survivor", "") or getattr(payload, "customer", ""),
        occurred_at=datetime.now(UTC),
        actor_subject="alice",
    )
    await js.publish(subject, serialize_envelope(envelope), headers={"Nats-Msg-Id": msg_id or event_id})
    return event_id


def merged(survivor: str, *losers: str) -> data_events_pb.CustomerMerged:
    return data_events_pb.CustomerMerged(survivor=survivor, losers=list(losers))


async def eventually(check, seconds: float = WAIT_SECONDS):
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.1)


async def rows(app, query):
    async with app.db.read_session() as session:
        return (await session.execute(query)).all()


async def new_opportunity(channel, metadata, customer_name: str, contact: str = "") -> opp_pb.Opportunity:
    stub = opp_grpc.OpportunityServiceStub(channel)
    close = datetime(2027, 3, 15, tzinfo=UTC)
    request = opp_pb.Opportunity(
        customer=customer_name,
        contact=contact,
        title="Forklifts",
        amount=money_pb2.Money(currency_code="CNY", amount_minor=1_000_000),
    )
    request.expected_close_time.FromDatetime(close)
    return await stub.CreateOpportunity(
        opp_pb.CreateOpportunityRequest(opportunity=request), metadata=metadata
    )


async def insert_documents(app, customer_name: str) -> tuple[str, str]:
    """A quote and an order of the customer, straight into the tables (their API needs a catalog)."""
    quote_id, order_id, now = new_id(), new_id(), datetime.now(UTC)
    totals = dict(subtotal=100, discount_total=0, tax_total=0, grand_total=100)
    async with app.uow_factory() as uow:
        session = uow.session
        await session.execute(
            sa.insert(quotes).values(
                id=quote_id,
                number=f"Q-{quote_id[:8]}",
                customer=customer_name,
                currency="CNY",
                lines=[],
                version=1,
                status="draft",
                owner="alice",
                create_time=now,
                update_time=now,
                row_version=1,
                **totals,
            )
        )
        await session.execute(
            sa.insert(orders).values(
                id=order_id,
                number=f"SO-{order_id[:8]}",
                customer=customer_name,
                currency="CNY",
                lines=[],
                status="confirmed",
                fulfilment_state="pending",
                owner="alice",
                create_time=now,
                update_time=now,
                row_version=1,
                **totals,
            )
        )
        await uow.commit()
    return quote_id, order_id


async def converted_lead(channel, metadata, app, customer_name: str, contact: str, *, email: str, phone: str):
    """A lead created through the API (encrypted phones/emails, blind index), then marked converted
    into customer_name (conversion itself needs the customer service: test_leads_conversion)."""
    stub = lead_grpc.LeadServiceStub(channel)
    lead = await stub.CreateLead(
        lead_pb.CreateLeadRequest(
            lead=lead_pb.Lead(
                display_name="Wang Fang",
                company="Ningbo Forklifts",
                title="Buyer",
                email_addresses=[email],
                phone_numbers=[phone],
                source_platform="douyin",
                external_account_id="wangfang-douyin",
                evidence=[lead_pb.LeadEvidence(uri="https://files.example/card.jpg", description="card")],
                source_channel=common_pb2.LEAD_SOURCE_CHANNEL_THIRD_PARTY,
            )
        ),
        metadata=metadata,
    )
    lead_id = lead.name.removeprefix("leads/")
    async with app.uow_factory() as uow:
        await uow.session.execute(
            sa.update(leads)
            .where(leads.c.id == lead_id)
            .values(status="converted", converted_customer=customer_name, converted_contact=contact)
        )
        await uow.commit()
    return lead


async def barrier(channel, metadata, app, js) -> None:
    """A later merge: the consumer applies in order, so what was published before is settled once
    this one shows."""
    barrier_survivor, barrier_loser = customer(), customer()
    probe = await new_opportunity(channel, metadata, barrier_loser)
    await publish(js, "crm.customer.customer.merged", merged(barrier_survivor, barrier_loser))

    async def barrier_applied():
        [b] = await rows(
            app,
            sa.select(opportunities).where(opportunities.c.id == probe.name.removeprefix("opportunities/")),
        )
        return b.customer_id == barrier_survivor.removeprefix("customers/")

    assert await eventually(barrier_applied), "the barrier merge was not applied"


async def test_a_merge_repoints_every_sales_reference_once(sales_service, channel, as_user):
    app, js = the_app(sales_service), sales_service.infrastructure.js
    admin = as_user("admin", "alice", "east")
    survivor, loser, other_loser, bystander = customer(), customer(), customer(), customer()
    contact_id = str(uuid.uuid4())
    loser_contact = f"{loser}/contacts/{contact_id}"
    opportunity = await new_opportunity(channel, admin, loser, loser_contact)
    second = await new_opportunity(channel, admin, other_loser)
    untouched = await new_opportunity(channel, admin, bystander)
    quote_id, order_id = await insert_documents(app, loser)
    lead = await converted_lead(
        channel,
        admin,
        app,
        loser,
        loser_contact,
        email=f"{uuid.uuid4().hex[:8]}@example.com",
        phone="13800138000",
    )
    lead_id = lead.name.removeprefix("leads/")
    opp_id = opportunity.name.removeprefix("opportunities/")

    event_id = await publish(js, "crm.customer.customer.merged", merged(survivor, loser, other_loser))

    async def moved():
        [row] = await rows(app, sa.select(opportunities).where(opportunities.c.id == opp_id))
        return row if row.customer_id == survivor.removeprefix("customers/") else None

    row = await eventually(moved)
    assert row, "the merge was not applied"
    assert row.contact == f"{survivor}/contacts/{contact_id}" and row.version == 2
    [second_row] = await rows(
        app, sa.select(opportunities).where(opportunities.c.id == second.name.removeprefix("opportunities/"))
    )
    assert second_row.customer_id == survivor.removeprefix("customers/") and second_row.contact == ""
    [untouched_row] = await rows(
        app,
        sa.select(opportunities).where(opportunities.c.id == untouched.name.removeprefix("opportunities/")),
    )
    assert untouched_row.customer_id == bystander.removeprefix("customers/") and untouched_row.version == 1
    [quote] = await rows(app, sa.select(quotes).where(quotes.c.id == quote_id))
    [order] = await rows(app, sa.select(orders).where(orders.c.id == order_id))
    assert (quote.customer, quote.row_version) == (survivor, 2)
    assert (order.customer, order.row_version) == (survivor, 2)
    [lead_row] = await rows(app, sa.select(leads).where(leads.c.id == lead_id))
    assert lead_row.converted_customer == survivor
    assert lead_row.converted_contact == f"{survivor}/contacts/{contact_id}"
    fetched = await lead_grpc.LeadServiceStub(channel).GetLead(
        lead_pb.GetLeadRequest(name=lead.name), metadata=admin
    )
    assert fetched.converted_customer == survivor and list(fetched.email_addresses) == list(
        lead.email_addresses
    )
    got = await opp_grpc.OpportunityServiceStub(channel).GetOpportunity(
        opp_pb.GetOpportunityRequest(name=opportunity.name), metadata=admin
    )
    assert got.customer == survivor and got.contact == f"{survivor}/contacts/{contact_id}"

    # The same event delivered again (new Nats-Msg-Id, so JetStream does not drop it) and the
    # same merge published again as a new event: neither changes anything a second time.
    await publish(
        js,
        "crm.customer.customer.merged",
        merged(survivor, loser, other_loser),
        event_id=event_id,
        msg_id=new_id(),
    )
    await publish(js, "crm.customer.customer.merged", merged(survivor, loser, other_loser))
    await barrier(channel, admin, app, js)
    [again] = await rows(app, sa.select(opportunities).where(opportunities.c.id == opp_id))
    assert (again.customer_id, again.contact, again.version) == (row.customer_id, row.contact, 2)
    [quote_again] = await rows(app, sa.select(quotes).where(quotes.c.id == quote_id))
    assert quote_again.row_version == 2
    [lead_again] = await rows(app, sa.select(leads).where(leads.c.id == lead_id))
    assert lead_again.version == lead_row.version
    platform = app.uow_factory.tables
    audits = await rows(
        app,
        sa.select(platform.audit_log).where(
            platform.audit_log.c.action == "customer_merged",
            platform.audit_log.c.resource == opportunity.name,
        ),
    )
    assert len(audits) == 1
    inbox = await rows(
        app,
        sa.select(platform.inbox).where(
            platform.inbox.c.consumer == CUSTOMER_CONSUMER, platform.inbox.c.event_id == event_id
        ),
    )
    assert len(inbox) == 1


async def test_erasure_shreds_the_converted_leads_and_keeps_the_business_records(
    sales_service, channel, as_user
):
    app, js = the_app(sales_service), sales_service.infrastructure.js
    admin = as_user("admin", "alice", "east")
    erased, kept = customer(), customer()
    email, phone = f"wang-{uuid.uuid4().hex[:8]}@example.com", "13912345678"
    contact = f"{erased}/contacts/{uuid.uuid4()}"
    lead = await converted_lead(channel, admin, app, erased, contact, email=email, phone=phone)
    other = await converted_lead(
        channel, admin, app, kept, "", email=f"li-{uuid.uuid4().hex[:8]}@example.com", phone="13700001111"
    )
    opportunity = await new_opportunity(channel, admin, erased, contact)
    lead_id = lead.name.removeprefix("leads/")

    await publish(js, "crm.customer.customer.erased", privacy_pb.CustomerErased(customer=erased))

    async def shredded():
        return not await rows(app, sa.select(lead_keys).where(lead_keys.c.lead_id == lead_id))

    assert await eventually(shredded), "the erasure was not applied"
    stub = lead_grpc.LeadServiceStub(channel)
    fetched = await stub.GetLead(lead_pb.GetLeadRequest(name=lead.name), metadata=admin)
    assert list(fetched.email_addresses) == [] and list(fetched.phone_numbers) == []
    assert (fetched.display_name, fetched.company, fetched.title, fetched.external_account_id) == (
        "",
        "",
        "",
        "",
    )
    assert list(fetched.evidence) == []
    assert fetched.status == lead_pb.LEAD_STATUS_CONVERTED and fetched.converted_customer == erased
    [raw] = await rows(app, sa.select(leads).where(leads.c.id == lead_id))
    assert raw.phones_enc is None and raw.emails_enc is None
    text = repr(tuple(raw))
    for secret in (email, phone, "Wang Fang", "Ningbo", "wangfang", "card.jpg"):
        assert secret not in text
    assert not await rows(app, sa.select(lead_identifiers).where(lead_identifiers.c.lead_id == lead_id))
    platform = app.uow_factory.tables
    audits = await rows(
        app,
        sa.select(platform.audit_log).where(
            platform.audit_log.c.action == "erased", platform.audit_log.c.resource == lead.name
        ),
    )
    assert len(audits) == 1
    # The same email may now identify a new lead (the blind index is gone).
    await stub.CreateLead(
        lead_pb.CreateLeadRequest(
            lead=lead_pb.Lead(
                display_name="Someone",
                email_addresses=[email],
                source_channel=common_pb2.LEAD_SOURCE_CHANNEL_WEB_FORM,
            )
        ),
        metadata=admin,
    )
    # Another customer's lead and the erased customer's opportunity (a business record) are kept.
    still = await stub.GetLead(lead_pb.GetLeadRequest(name=other.name), metadata=admin)
    assert list(still.email_addresses) == list(other.email_addresses) and still.display_name == "Wang Fang"
    deal = await opp_grpc.OpportunityServiceStub(channel).GetOpportunity(
        opp_pb.GetOpportunityRequest(name=opportunity.name), metadata=admin
    )
    assert deal.customer == erased and deal.amount.amount_minor == 1_000_000


async def test_a_deleted_customer_leaves_the_records_and_audits_them(sales_service, channel, as_user):
    app, js = the_app(sales_service), sales_service.infrastructure.js
    admin = as_user("admin", "alice", "east")
    gone = customer()
    opportunity = await new_opportunity(channel, admin, gone)
    await publish(
        js, "crm.customer.customer.deleted", customer_events_pb.CustomerDeleted(customer=gone, owner="alice")
    )
    platform = app.uow_factory.tables

    async def audited():
        return await rows(
            app,
            sa.select(platform.audit_log).where(
                platform.audit_log.c.action == "customer_deleted",
                platform.audit_log.c.resource == opportunity.name,
            ),
        )

    assert await eventually(audited), "the deletion was not applied"
    got = await opp_grpc.OpportunityServiceStub(channel).GetOpportunity(
        opp_pb.GetOpportunityRequest(name=opportunity.name), metadata=admin
    )
    assert got.customer == gone and got.etag == opportunity.etag


async def test_poison_is_dead_lettered_and_the_consumer_moves_on(sales_service, channel, as_user):
    app, js = the_app(sales_service), sales_service.infrastructure.js
    admin = as_user("admin", "alice", "east")
    platform = app.uow_factory.tables
    bad_event = await publish(js, "crm.customer.customer.merged", merged("", "not-a-customer"))
    garbage_id = new_id()
    await js.publish(
        "crm.customer.customer.erased", b"\x00not an envelope", headers={"Nats-Msg-Id": garbage_id}
    )
    survivor, loser = customer(), customer()
    opportunity = await new_opportunity(channel, admin, loser)
    await publish(js, "crm.customer.customer.merged", merged(survivor, loser))

    async def parked():
        letters = await list_dead_letters(app.db, platform, CUSTOMER_CONSUMER)
        return letters if len(letters) >= 2 else None

    letters = await eventually(parked)
    assert letters, "poison was not dead-lettered"
    by_event = {letter.event_id: letter for letter in letters}
    assert by_event[bad_event].deliveries == 1  # not retried: it can never succeed
    assert "not a customer name" in by_event[bad_event].error
    assert by_event[garbage_id].subject == "crm.customer.customer.erased"
    assert by_event[garbage_id].error.startswith("EnvelopeError")

    async def moved_on():
        got = await opp_grpc.OpportunityServiceStub(channel).GetOpportunity(
            opp_pb.GetOpportunityRequest(name=opportunity.name), metadata=admin
        )
        return got.customer == survivor

    assert await eventually(moved_on), "the consumer did not move on after the poison"
    assert len(await list_dead_letters(app.db, platform, CUSTOMER_CONSUMER)) == len(letters)
