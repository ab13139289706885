"""TicketService through a real gRPC channel, on SQLite and PostgreSQL, with events on real NATS.

What a caller notices: numbering and defaults, the status machine and its FAILED_PRECONDITION
reasons, first response recorded once, data scope (NOT_FOUND outside it), customer_portal callers
never seeing internal notes or internal fields, and the events every change publishes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import field_mask_pb2
from servicedesk_testkit import servicedesk_settings

from crm.servicedesk.v1 import common_pb2 as cpb
from crm.servicedesk.v1 import events_pb2
from crm.servicedesk.v1 import ticket_service_pb2 as pb
from crm.servicedesk.v1 import ticket_service_pb2_grpc as pb_grpc
from crm_servicedesk.api.tickets import TicketServicer
from crm_servicedesk.bootstrap import build
from crm_servicedesk.service.tickets import AUTO_CLOSE_TIMER
from crm_servicedesk.timers import timer_handlers
from crm_shared import timers
from crm_shared.clock import ManualClock
from crm_shared.grpc.status import error_details
from crm_shared.runtime import start_service
from crm_shared.testing.events import wait_for_envelopes
from crm_shared.testing.fixtures_nats import connect_nats
from crm_shared.timers import TimerScheduler

pytestmark = pytest.mark.asyncio(loop_scope="session")

STREAM = "CRM_SERVICEDESK"


@pytest.fixture
def tickets(channel):
    return pb_grpc.TicketServiceStub(channel)


async def expect_error(call, code: grpc.StatusCode):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    details = error_details(caught.value)
    assert details.code == code, f"{details.code} {details.message}"
    return details


async def events_about(nats_server, resource: str, count: int):
    nc = await connect_nats(nats_server.url)
    try:
        return await wait_for_envelopes(nc.jetstream(), STREAM, resource=resource, count=count)
    finally:
        await nc.close()


def unique_team(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_a_ticket_is_numbered_defaulted_and_walks_the_status_machine(tickets, as_user, nats_server):
    agent = as_user("support_agent", "sam", unique_team("east"))
    created = await tickets.CreateTicket(
        pb.CreateTicketRequest(ticket=pb.Ticket(subject="  Printer is on fire ", tags=["VIP", "vip", "hw"])),
        metadata=agent,
    )
    assert created.number.startswith("T-") and len(created.number) == 8
    assert (created.status, created.type, created.channel, created.priority) == (
        cpb.TICKET_STATUS_NEW,
        cpb.TICKET_TYPE_INQUIRY,
        cpb.TICKET_CHANNEL_API,
        cpb.TICKET_PRIORITY_NORMAL,
    )
    assert (created.subject, list(created.tags), created.requester) == (
        "Printer is on fire",
        ["vip", "hw"],
        "sam",
    )
    assert created.customer_snapshot.state == pb.CUSTOMER_SNAPSHOT_STATE_NONE
    name = created.name

    not_resolved = await expect_error(
        tickets.CloseTicket(pb.CloseTicketRequest(name=name), metadata=agent),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert not_resolved.reason == "TICKET_NOT_RESOLVED"

    # An agent's public reply: first response recorded once, NEW -> OPEN; a note changes nothing.
    await tickets.AddTicketComment(
        pb.AddTicketCommentRequest(parent=name, comment=pb.TicketComment(body="checking", internal=True)),
        metadata=agent,
    )
    assert (
        await tickets.GetTicket(pb.GetTicketRequest(name=name), metadata=agent)
    ).status == cpb.TICKET_STATUS_NEW
    await tickets.AddTicketComment(
        pb.AddTicketCommentRequest(parent=name, comment=pb.TicketComment(body="On our way")), metadata=agent
    )
    first = await tickets.GetTicket(pb.GetTicketRequest(name=name), metadata=agent)
    assert first.status == cpb.TICKET_STATUS_OPEN and first.HasField("first_response_time")
    await tickets.AddTicketComment(
        pb.AddTicketCommentRequest(parent=name, comment=pb.TicketComment(body="Still on it")), metadata=agent
    )
    again = await tickets.GetTicket(pb.GetTicketRequest(name=name), metadata=agent)
    assert again.first_response_time == first.first_response_time

    held = await tickets.HoldTicket(
        pb.HoldTicketRequest(name=name, reason="waiting on vendor"), metadata=agent
    )
    assert (held.status, held.pending_reason) == (cpb.TICKET_STATUS_PENDING, "waiting on vendor")
    resumed = await tickets.ResumeTicket(pb.ResumeTicketRequest(name=name, etag=held.etag), metadata=agent)
    assert resumed.status == cpb.TICKET_STATUS_OPEN
    stale = await expect_error(
        tickets.ResolveTicket(pb.ResolveTicketRequest(name=name, etag=held.etag), metadata=agent),
        grpc.StatusCode.ABORTED,
    )
    assert stale.reason == "STALE_ETAG"
    resolved = await tickets.ResolveTicket(
        pb.ResolveTicketRequest(name=name, resolution="replaced toner"), metadata=agent
    )
    assert (resolved.status, resolved.resolution) == (cpb.TICKET_STATUS_RESOLVED, "replaced toner")
    assert resolved.HasField("resolve_time")
    closed = await tickets.CloseTicket(pb.CloseTicketRequest(name=name), metadata=agent)
    assert closed.status == cpb.TICKET_STATUS_CLOSED and closed.HasField("close_time")
    await expect_error(
        tickets.ReopenTicket(pb.ReopenTicketRequest(name=name), metadata=agent),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    reopened = await tickets.ReopenTicket(
        pb.ReopenTicketRequest(name=name, reason="on fire again"), metadata=agent
    )
    assert (reopened.status, reopened.reopen_count) == (cpb.TICKET_STATUS_OPEN, 1)
    assert not reopened.HasField("resolve_time") and not reopened.HasField("close_time")

    envelopes = await events_about(nats_server, name, count=10)
    types = [env.type.rsplit(".", 1)[-1] for env in envelopes]
    assert types[0] == "TicketCreated"
    assert types.count("TicketCommented") == 3
    moves = []
    for env in envelopes:
        if env.type.endswith("TicketStatusChanged"):
            event = events_pb2.TicketStatusChanged()
            env.payload.Unpack(event)
            moves.append((event.previous_status, event.ticket.status))
    assert moves == [
        (cpb.TICKET_STATUS_NEW, cpb.TICKET_STATUS_OPEN),
        (cpb.TICKET_STATUS_OPEN, cpb.TICKET_STATUS_PENDING),
        (cpb.TICKET_STATUS_PENDING, cpb.TICKET_STATUS_OPEN),
        (cpb.TICKET_STATUS_OPEN, cpb.TICKET_STATUS_RESOLVED),
        (cpb.TICKET_STATUS_RESOLVED, cpb.TICKET_STATUS_CLOSED),
        (cpb.TICKET_STATUS_CLOSED, cpb.TICKET_STATUS_OPEN),
    ]


async def test_an_agent_cannot_read_or_touch_another_teams_ticket(tickets, as_user):
    east, west = unique_team("support-east"), unique_team("support-west")
    east_agent = as_user("support_agent", "erin", east)
    west_agent = as_user("support_agent", "wade", west)
    ticket = await tickets.CreateTicket(
        pb.CreateTicketRequest(ticket=pb.Ticket(subject="VPN down")), metadata=east_agent
    )
    assert ticket.team == east

    for call in (
        tickets.GetTicket(pb.GetTicketRequest(name=ticket.name), metadata=west_agent),
        tickets.UpdateTicket(
            pb.UpdateTicketRequest(
                ticket=pb.Ticket(name=ticket.name, subject="mine now"),
                update_mask=field_mask_pb2.FieldMask(paths=["subject"]),
            ),
            metadata=west_agent,
        ),
        tickets.AddTicketComment(
            pb.AddTicketCommentRequest(parent=ticket.name, comment=pb.TicketComment(body="hi")),
            metadata=west_agent,
        ),
    ):
        missing = await expect_error(call, grpc.StatusCode.NOT_FOUND)
        assert missing.reason == "TICKET_NOT_FOUND"
    listed = await tickets.ListTickets(pb.ListTicketsRequest(page_size=500), metadata=west_agent)
    assert ticket.name not in [t.name for t in listed.tickets]
    outside = await expect_error(
        tickets.CreateTicket(
            pb.CreateTicketRequest(ticket=pb.Ticket(subject="x", team=east)), metadata=west_agent
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert outside.reason == "TEAM_OUTSIDE_SCOPE"

    # Assigned to the west agent (an escalation across teams), it is theirs to work.
    manager = as_user("support_manager", "maria", "support")
    await tickets.AssignTicket(pb.AssignTicketRequest(name=ticket.name, assignee="wade"), metadata=manager)
    seen = await tickets.GetTicket(pb.GetTicketRequest(name=ticket.name), metadata=west_agent)
    assert seen.assignee == "wade"
    listed = await tickets.ListTickets(pb.ListTicketsRequest(filter='assignee = "wade"'), metadata=west_agent)
    assert ticket.name in [t.name for t in listed.tickets]


async def test_customer_portal_callers_see_public_replies_only(tickets, as_user):
    team = unique_team("support")
    portal = as_user("customer_portal", f"cust-{uuid.uuid4().hex[:6]}", "")
    stranger = as_user("customer_portal", f"cust-{uuid.uuid4().hex[:6]}", "")
    agent = as_user("support_agent", "sam", team)
    manager = as_user("support_manager", "maria", "support")
    ticket = await tickets.CreateTicket(
        pb.CreateTicketRequest(
            ticket=pb.Ticket(subject="Refund please", team=team, channel=cpb.TICKET_CHANNEL_WEB)
        ),
        metadata=portal,
    )
    await tickets.AssignTicket(pb.AssignTicketRequest(name=ticket.name, assignee="sam"), metadata=manager)
    await tickets.AddTicketComment(
        pb.AddTicketCommentRequest(
            parent=ticket.name, comment=pb.TicketComment(body="customer is grumpy", internal=True)
        ),
        metadata=agent,
    )
    await tickets.HoldTicket(
        pb.HoldTicketRequest(name=ticket.name, reason="asked for invoice no."), metadata=agent
    )

    # The customer's reply resumes the PENDING ticket.
    reply = await tickets.AddTicketComment(
        pb.AddTicketCommentRequest(parent=ticket.name, comment=pb.TicketComment(body="INV-42")),
        metadata=portal,
    )
    assert reply.from_customer and reply.author
    await expect_error(
        tickets.AddTicketComment(
            pb.AddTicketCommentRequest(parent=ticket.name, comment=pb.TicketComment(body="x", internal=True)),
            metadata=portal,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )

    as_customer = await tickets.GetTicket(pb.GetTicketRequest(name=ticket.name), metadata=portal)
    assert as_customer.status == cpb.TICKET_STATUS_OPEN
    assert (as_customer.assignee, as_customer.team, as_customer.pending_reason) == ("", "", "")
    assert not as_customer.HasField("sla") and not as_customer.HasField("customer_snapshot")
    as_agent = await tickets.GetTicket(pb.GetTicketRequest(name=ticket.name), metadata=agent)
    assert (as_agent.assignee, as_agent.team, as_agent.pending_reason) == (
        "sam",
        team,
        "asked for invoice no.",
    )

    customer_view = await tickets.ListTicketComments(
        pb.ListTicketCommentsRequest(parent=ticket.name), metadata=portal
    )
    assert [c.body for c in customer_view.comments] == ["INV-42"]
    agent_view = await tickets.ListTicketComments(
        pb.ListTicketCommentsRequest(parent=ticket.name, page_size=1), metadata=agent
    )
    assert [c.body for c in agent_view.comments] == ["customer is grumpy"]
    second = await tickets.ListTicketComments(
        pb.ListTicketCommentsRequest(parent=ticket.name, page_size=1, page_token=agent_view.next_page_token),
        metadata=agent,
    )
    assert [c.body for c in second.comments] == ["INV-42"]

    listed = await tickets.ListTickets(pb.ListTicketsRequest(), metadata=portal)
    assert [t.name for t in listed.tickets] == [ticket.name] and listed.tickets[0].assignee == ""
    await expect_error(
        tickets.GetTicket(pb.GetTicketRequest(name=ticket.name), metadata=stranger), grpc.StatusCode.NOT_FOUND
    )
    await expect_error(
        tickets.ResolveTicket(pb.ResolveTicketRequest(name=ticket.name), metadata=portal),
        grpc.StatusCode.PERMISSION_DENIED,
    )


async def test_updates_filters_and_ordering(tickets, as_user, nats_server):
    team = unique_team("queue")
    agent = as_user("support_agent", "sam", team)
    low = await tickets.CreateTicket(
        pb.CreateTicketRequest(ticket=pb.Ticket(subject="low", priority=cpb.TICKET_PRIORITY_LOW)),
        metadata=agent,
    )
    urgent = await tickets.CreateTicket(
        pb.CreateTicketRequest(
            ticket=pb.Ticket(subject="urgent", priority=cpb.TICKET_PRIORITY_URGENT, tags=["outage"])
        ),
        metadata=agent,
    )
    updated = await tickets.UpdateTicket(
        pb.UpdateTicketRequest(
            ticket=pb.Ticket(name=low.name, priority=cpb.TICKET_PRIORITY_HIGH, type=cpb.TICKET_TYPE_INCIDENT),
            update_mask=field_mask_pb2.FieldMask(paths=["priority", "type"]),
        ),
        metadata=agent,
    )
    assert (updated.priority, updated.type) == (cpb.TICKET_PRIORITY_HIGH, cpb.TICKET_TYPE_INCIDENT)
    read_only = await expect_error(
        tickets.UpdateTicket(
            pb.UpdateTicketRequest(
                ticket=pb.Ticket(name=low.name, team="other"),
                update_mask=field_mask_pb2.FieldMask(paths=["team"]),
            ),
            metadata=agent,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert read_only.field_violations

    by_priority = await tickets.ListTickets(
        pb.ListTicketsRequest(filter=f'team = "{team}"', order_by="priority desc"), metadata=agent
    )
    assert [t.name for t in by_priority.tickets] == [urgent.name, low.name]
    tagged = await tickets.ListTickets(
        pb.ListTicketsRequest(filter=f'team = "{team}" AND tags: "outage"'), metadata=agent
    )
    assert [t.name for t in tagged.tickets] == [urgent.name]
    high = await tickets.ListTickets(
        pb.ListTicketsRequest(filter=f'team = "{team}" AND priority = TICKET_PRIORITY_HIGH'), metadata=agent
    )
    assert [t.name for t in high.tickets] == [low.name]
    # No SLA policy applies to these tickets: none is breached.
    unbreached = await tickets.ListTickets(
        pb.ListTicketsRequest(filter=f'team = "{team}" AND sla_breached = false'), metadata=agent
    )
    assert len(unbreached.tickets) == 2
    breached = await tickets.ListTickets(
        pb.ListTicketsRequest(filter=f'team = "{team}" AND sla_breached = true'), metadata=agent
    )
    assert not breached.tickets
    page = await tickets.ListTickets(
        pb.ListTicketsRequest(filter=f'team = "{team}"', page_size=1), metadata=agent
    )
    rest = await tickets.ListTickets(
        pb.ListTicketsRequest(filter=f'team = "{team}"', page_size=1, page_token=page.next_page_token),
        metadata=agent,
    )
    assert [page.tickets[0].name, rest.tickets[0].name] == [
        urgent.name,
        low.name,
    ] and not rest.next_page_token

    envelopes = await events_about(nats_server, low.name, count=2)
    event = events_pb2.TicketUpdated()
    envelopes[1].payload.Unpack(event)
    assert sorted(event.changed_fields) == ["priority", "type"]
    assert event.ticket.priority == cpb.TICKET_PRIORITY_HIGH


async def test_create_with_the_same_request_id_makes_one_ticket(tickets, as_user):
    agent = as_user("support_agent", "sam", unique_team("dup"))
    request = pb.CreateTicketRequest(ticket=pb.Ticket(subject="once"), request_id=str(uuid.uuid4()))
    first = await tickets.CreateTicket(request, metadata=agent)
    second = await tickets.CreateTicket(request, metadata=agent)
    assert first.name == second.name and first.number == second.number


START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
async def clocked(database_url, nats_server, jwt_keys):
    """A servicedesk on a ManualClock whose durable timers the test fires (auto-close after 3 days)."""
    clock = ManualClock(START)
    settings = servicedesk_settings(database_url, nats_server.url, jwt_keys, auto_close_days=3)
    running = await start_service(settings, build, clock=clock)
    try:
        for worker in running.parts.workers:
            if isinstance(worker, TimerScheduler):
                await worker.stop()
        app = next(s for _, s in running.parts.servicers if isinstance(s, TicketServicer))._app
        scheduler = TimerScheduler(
            app.db, app.uow_factory.tables, app.uow_factory, clock=clock, handlers=timer_handlers(app)
        )
        async with grpc.aio.insecure_channel(running.address) as channel:
            yield pb_grpc.TicketServiceStub(channel), clock, scheduler, app
    finally:
        await running.stop(1)


async def test_a_resolved_ticket_closes_itself_after_the_delay_unless_reopened(clocked, as_user):
    tickets, clock, scheduler, app = clocked
    agent = as_user("support_agent", "sam", "support-east")
    kept = await tickets.CreateTicket(pb.CreateTicketRequest(ticket=pb.Ticket(subject="a")), metadata=agent)
    reopened = await tickets.CreateTicket(
        pb.CreateTicketRequest(ticket=pb.Ticket(subject="b")), metadata=agent
    )
    for ticket in (kept, reopened):
        await tickets.ResolveTicket(pb.ResolveTicketRequest(name=ticket.name), metadata=agent)
    await tickets.ReopenTicket(pb.ReopenTicketRequest(name=reopened.name, reason="not fixed"), metadata=agent)
    async with app.db.read_session() as session:
        assert (
            await timers.get_timer(
                session, app.uow_factory.tables, AUTO_CLOSE_TIMER, reopened.name.removeprefix("tickets/")
            )
            is None
        )

    clock.set(START + timedelta(days=3) - timedelta(seconds=1))
    assert await scheduler.run_due() == 0
    clock.set(START + timedelta(days=3))
    assert await scheduler.run_due() == 1
    closed = await tickets.GetTicket(pb.GetTicketRequest(name=kept.name), metadata=agent)
    assert closed.status == cpb.TICKET_STATUS_CLOSED
    assert closed.close_time.ToDatetime(tzinfo=UTC) == START + timedelta(days=3)
    still_open = await tickets.GetTicket(pb.GetTicketRequest(name=reopened.name), metadata=agent)
    assert still_open.status == cpb.TICKET_STATUS_OPEN
