"""CustomerMerged and CustomerErased (published to the real NATS stream CRM_CUSTOMER) applied to
tickets, on SQLite and PostgreSQL: a merge moves the losers' tickets (and contacts) to the
survivor, an erasure clears the snapshot's personal attributes, and redeliveries change nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from crm.customer.v1 import data_events_pb2, privacy_events_pb2
from crm.servicedesk.v1 import csat_service_pb2 as csat_pb
from crm.servicedesk.v1 import csat_service_pb2_grpc as csat_grpc
from crm.servicedesk.v1 import ticket_service_pb2 as pb
from crm.servicedesk.v1 import ticket_service_pb2_grpc as pb_grpc
from crm_servicedesk.adapters.ticket_repository import TicketRepository
from crm_servicedesk.consumers import SUBJECT_CUSTOMER_ERASED, SUBJECT_CUSTOMER_MERGED, CustomerEventConsumer
from crm_servicedesk.domain import tickets as rules
from crm_servicedesk.domain.tickets import CustomerFacts
from crm_shared.events.envelope import build_envelope, serialize_envelope
from crm_shared.ids import new_id
from crm_shared.testing.events import stream_envelopes
from crm_shared.testing.fixtures_nats import connect_nats

pytestmark = pytest.mark.asyncio(loop_scope="session")

WAIT_SECONDS = 20.0


def the_app(servicedesk_service):
    [worker] = [w for w in servicedesk_service.parts.workers if isinstance(w, CustomerEventConsumer)]
    return worker.app


def customer_name() -> str:
    return f"customers/{uuid.uuid4()}"


async def publish(js, subject: str, payload, resource: str, *, event_id: str | None = None) -> str:
    """Publish like the customer outbox relay; the same event_id with a new msg id is a redelivery."""
    event_id = event_id or new_id()
    envelope = build_envelope(
        event_id=event_id,
        payload=payload,
        source="customer",
        subject=resource,
        occurred_at=datetime.now(UTC),
        actor_subject="dpo",
    )
    await js.publish(subject, serialize_envelope(envelope), headers={"Nats-Msg-Id": new_id()})
    return event_id


async def eventually(check, seconds: float = WAIT_SECONDS):
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.1)


async def ticket_with_snapshot(app, tickets, metadata, customer: str, *, contact: str = "") -> pb.Ticket:
    """A ticket whose snapshot was fetched (set through the domain: no customer service here)."""
    created = await tickets.CreateTicket(
        pb.CreateTicketRequest(ticket=pb.Ticket(subject="Help", customer=customer, contact=contact)),
        metadata=metadata,
    )
    async with app.uow_factory() as uow:
        repo = TicketRepository(uow.session)
        current = await repo.get(created.name.removeprefix("tickets/"))
        facts = CustomerFacts(
            display_name="Jane Roe", tier="A", lifecycle_stage="active", owner="olga", team="e"
        )
        await repo.save(rules.snapshot_fetched(current, facts, uow.now), current.row_version)
        await uow.commit()
    return created


async def updated_events(nats_server, ticket_name: str) -> int:
    nc = await connect_nats(nats_server.url)
    try:
        envelopes = await stream_envelopes(
            nc.jetstream(), "CRM_SERVICEDESK", "crm.servicedesk.ticket.updated"
        )
        return sum(1 for _, env in envelopes if env.subject == ticket_name)
    finally:
        await nc.close()


async def test_an_erased_customer_leaves_tickets_without_personal_snapshot(
    servicedesk_service, channel, as_user, nats_server
):
    app, js = the_app(servicedesk_service), servicedesk_service.infrastructure.js
    tickets = pb_grpc.TicketServiceStub(channel)
    admin = as_user("admin", "root", "hq")
    customer, other = customer_name(), customer_name()
    ticket = await ticket_with_snapshot(app, tickets, admin, customer)
    bystander = await ticket_with_snapshot(app, tickets, admin, other)
    # The customer answered a survey with free text before asking to be forgotten.
    await tickets.ResolveTicket(pb.ResolveTicketRequest(name=ticket.name), metadata=admin)
    surveys = csat_grpc.CsatServiceStub(channel)
    survey = f"{ticket.name}/csatSurvey"
    await surveys.SubmitCsatResponse(
        csat_pb.SubmitCsatResponseRequest(name=survey, score=2, comment="Jane here, call me at home"),
        metadata=admin,
    )

    erased = await publish(
        js, SUBJECT_CUSTOMER_ERASED, privacy_events_pb2.CustomerErased(customer=customer), customer
    )

    async def cleared():
        seen = await tickets.GetTicket(pb.GetTicketRequest(name=ticket.name), metadata=admin)
        return seen if seen.customer_snapshot.state == pb.CUSTOMER_SNAPSHOT_STATE_NOT_FOUND else None

    seen = await eventually(cleared)
    assert seen is not None, "the erasure was not applied"
    assert (seen.customer_snapshot.display_name, seen.customer_snapshot.tier, seen.customer) == (
        "",
        "",
        customer,
    )
    answered = await surveys.GetCsatSurvey(csat_pb.GetCsatSurveyRequest(name=survey), metadata=admin)
    assert (answered.score, answered.comment) == (2, "")  # the score stays for the statistics
    untouched = await tickets.GetTicket(pb.GetTicketRequest(name=bystander.name), metadata=admin)
    assert untouched.customer_snapshot.display_name == "Jane Roe"

    # Redelivered, then a later erasure as a barrier (the consumer applies in order).
    await publish(
        js,
        SUBJECT_CUSTOMER_ERASED,
        privacy_events_pb2.CustomerErased(customer=customer),
        customer,
        event_id=erased,
    )
    await publish(js, SUBJECT_CUSTOMER_ERASED, privacy_events_pb2.CustomerErased(customer=other), other)

    async def barrier():
        seen = await tickets.GetTicket(pb.GetTicketRequest(name=bystander.name), metadata=admin)
        return seen.customer_snapshot.state == pb.CUSTOMER_SNAPSHOT_STATE_NOT_FOUND

    assert await eventually(barrier)
    assert await updated_events(nats_server, ticket.name) == 1


async def test_a_merge_moves_the_losers_tickets_to_the_survivor_once(
    servicedesk_service, channel, as_user, nats_server
):
    app, js = the_app(servicedesk_service), servicedesk_service.infrastructure.js
    tickets = pb_grpc.TicketServiceStub(channel)
    admin = as_user("admin", "root", "hq")
    survivor, loser, unrelated = customer_name(), customer_name(), customer_name()
    contact_id = uuid.uuid4()
    moved = await ticket_with_snapshot(app, tickets, admin, loser, contact=f"{loser}/contacts/{contact_id}")
    stays = await ticket_with_snapshot(app, tickets, admin, unrelated)

    merge = data_events_pb2.CustomerMerged(survivor=survivor, losers=[loser])
    merged = await publish(js, SUBJECT_CUSTOMER_MERGED, merge, survivor)

    async def rehomed():
        seen = await tickets.GetTicket(pb.GetTicketRequest(name=moved.name), metadata=admin)
        return seen if seen.customer == survivor else None

    seen = await eventually(rehomed)
    assert seen is not None, "the merge was not applied"
    assert seen.contact == f"{survivor}/contacts/{contact_id}"
    # The survivor's facts are fetched again (the old snapshot described the loser).
    assert seen.customer_snapshot.state == pb.CUSTOMER_SNAPSHOT_STATE_PENDING
    assert seen.customer_snapshot.display_name == ""
    assert (
        await tickets.GetTicket(pb.GetTicketRequest(name=stays.name), metadata=admin)
    ).customer == unrelated
    listed = await tickets.ListTickets(
        pb.ListTicketsRequest(filter=f'customer = "{survivor}"'), metadata=admin
    )
    assert [t.name for t in listed.tickets] == [moved.name]

    await publish(js, SUBJECT_CUSTOMER_MERGED, merge, survivor, event_id=merged)
    barrier_survivor = customer_name()
    await publish(
        js,
        SUBJECT_CUSTOMER_MERGED,
        data_events_pb2.CustomerMerged(survivor=barrier_survivor, losers=[unrelated]),
        barrier_survivor,
    )

    async def barrier():
        seen = await tickets.GetTicket(pb.GetTicketRequest(name=stays.name), metadata=admin)
        return seen.customer == barrier_survivor

    assert await eventually(barrier)
    assert await updated_events(nats_server, moved.name) == 1
