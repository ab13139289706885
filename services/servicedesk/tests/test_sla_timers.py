"""SLA warnings, breaches and escalations on durable timers, driven by a controllable clock.

The service runs (SQLite and PostgreSQL, real NATS) with a ManualClock and its background timer
worker stopped; the test moves the clock and runs a TimerScheduler's run_due() itself, so "fires
at its moment" means: not a second before, exactly once at it. Calendar: UTC office hours
Monday-Friday 09:00-17:00; 5 January 2026 is a Monday.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import duration_pb2
from google.type import dayofweek_pb2
from servicedesk_testkit import servicedesk_settings

from crm.servicedesk.v1 import common_pb2 as cpb
from crm.servicedesk.v1 import events_pb2
from crm.servicedesk.v1 import sla_service_pb2 as pb
from crm.servicedesk.v1 import sla_service_pb2_grpc as pb_grpc
from crm.servicedesk.v1 import support_team_service_pb2 as spb
from crm.servicedesk.v1 import support_team_service_pb2_grpc as spb_grpc
from crm.servicedesk.v1 import ticket_service_pb2 as tpb
from crm.servicedesk.v1 import ticket_service_pb2_grpc as tpb_grpc
from crm_servicedesk.adapters.ticket_repository import TicketRepository
from crm_servicedesk.api.sla import SlaServicer
from crm_servicedesk.bootstrap import build
from crm_servicedesk.domain.sla import SlaMetric
from crm_servicedesk.service.escalation import escalate
from crm_servicedesk.service.sla import BREACH_TIMER, WARNING_TIMER, timer_key
from crm_servicedesk.timers import timer_handlers
from crm_shared import timers
from crm_shared.clock import ManualClock
from crm_shared.runtime import start_service
from crm_shared.testing.events import stream_envelopes
from crm_shared.testing.fixtures_nats import connect_nats
from crm_shared.timers import Timer, TimerScheduler

pytestmark = pytest.mark.asyncio(loop_scope="session")

STREAM = "CRM_SERVICEDESK"
MONDAY_9 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def hours(value: float) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.FromTimedelta(timedelta(hours=value))
    return message


class Harness:
    def __init__(self, running, clock: ManualClock, channel, meta) -> None:
        self.clock, self.meta, self.channel = clock, meta, channel
        self.sla = pb_grpc.SlaServiceStub(channel)
        self.tickets = tpb_grpc.TicketServiceStub(channel)
        self.app = next(s for _, s in running.parts.servicers if isinstance(s, SlaServicer))._app
        self.handlers = timer_handlers(self.app)
        self.scheduler = TimerScheduler(
            self.app.db,
            self.app.uow_factory.tables,
            self.app.uow_factory,
            clock=clock,
            handlers=self.handlers,
        )

    async def policy(self, **fields) -> pb.SlaPolicy:
        calendar = await self.sla.CreateBusinessCalendar(
            pb.CreateBusinessCalendarRequest(
                business_calendar=pb.BusinessCalendar(
                    time_zone="UTC",
                    working_hours=[
                        pb.WorkingHours(day=day, start="09:00", end="17:00")
                        for day in range(dayofweek_pb2.MONDAY, dayofweek_pb2.SATURDAY)
                    ],
                )
            ),
            metadata=self.meta,
        )
        return await self.sla.CreateSlaPolicy(
            pb.CreateSlaPolicyRequest(sla_policy=pb.SlaPolicy(active=True, calendar=calendar.name, **fields)),
            metadata=self.meta,
        )

    async def ticket(self, subject: str = "VPN down") -> tpb.Ticket:
        return await self.tickets.CreateTicket(
            tpb.CreateTicketRequest(ticket=tpb.Ticket(subject=subject)), metadata=self.meta
        )

    async def get(self, name: str) -> tpb.Ticket:
        return await self.tickets.GetTicket(tpb.GetTicketRequest(name=name), metadata=self.meta)

    async def fire_at(self, moment: datetime) -> int:
        self.clock.set(moment)
        return await self.scheduler.run_due()

    async def due_at(self, kind: str, ticket: str, metric: SlaMetric, cycle: int = 1) -> datetime | None:
        async with self.app.db.read_session() as session:
            timer = await timers.get_timer(
                session,
                self.app.uow_factory.tables,
                kind,
                timer_key(ticket.removeprefix("tickets/"), metric, cycle),
            )
        return None if timer is None else timer.due_at


@pytest.fixture
async def harness(database_url, nats_server, jwt_keys, token_factory):
    clock = ManualClock(MONDAY_9)
    running = await start_service(
        servicedesk_settings(database_url, nats_server.url, jwt_keys), build, clock=clock
    )
    try:
        for worker in running.parts.workers:
            if isinstance(worker, TimerScheduler):
                await worker.stop()
        meta = (
            ("authorization", f"Bearer {token_factory(subject='ada', roles=('admin',), team='support')}"),
        )
        async with grpc.aio.insecure_channel(running.address) as channel:
            yield Harness(running, clock, channel, meta)
    finally:
        await running.stop(1)


async def sla_events(nats_server, ticket: str, expected: int, within: float = 10.0) -> list:
    """SlaWarning / SlaBreached / TicketEscalated about `ticket`, once `expected` arrived (bounded wait)."""
    kinds = {
        "crm.servicedesk.v1.SlaWarning",
        "crm.servicedesk.v1.SlaBreached",
        "crm.servicedesk.v1.TicketEscalated",
    }
    nc = await connect_nats(nats_server.url)
    deadline = time.monotonic() + within
    try:
        while True:
            found = [
                env
                for _, env in await stream_envelopes(nc.jetstream(), STREAM)
                if env.subject == ticket and env.type in kinds
            ]
            if len(found) >= expected or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.1)
    finally:
        await nc.close()


async def test_warning_then_breach_fire_once_at_their_moments(harness, nats_server):
    # 10 business hours from Monday 09:00: warning at 80 % = Monday 17:00, due Tuesday 11:00.
    await harness.policy(targets=pb.SlaTargets(first_response=hours(10)))
    ticket = await harness.ticket()
    assert await harness.due_at(WARNING_TIMER, ticket.name, SlaMetric.FIRST_RESPONSE) == datetime(
        2026, 1, 5, 17, 0, tzinfo=UTC
    )
    tuesday_11 = datetime(2026, 1, 6, 11, 0, tzinfo=UTC)
    assert await harness.due_at(BREACH_TIMER, ticket.name, SlaMetric.FIRST_RESPONSE) == tuesday_11

    assert await harness.fire_at(datetime(2026, 1, 5, 16, 59, 59, tzinfo=UTC)) == 0
    assert await harness.fire_at(datetime(2026, 1, 5, 17, 0, tzinfo=UTC)) == 1
    assert await harness.fire_at(datetime(2026, 1, 5, 23, 0, tzinfo=UTC)) == 0  # once, not again
    warned = (await harness.get(ticket.name)).sla.targets[0]
    assert warned.warned and not warned.breached
    assert warned.remaining.ToTimedelta() == timedelta(hours=2)  # nights do not count

    assert await harness.fire_at(tuesday_11 - timedelta(seconds=1)) == 0
    assert await harness.fire_at(tuesday_11) == 1
    assert await harness.fire_at(tuesday_11 + timedelta(hours=1)) == 0
    late = (await harness.get(ticket.name)).sla.targets[0]
    assert late.breached and late.due_time.ToDatetime(tzinfo=UTC) == tuesday_11
    assert late.remaining.ToTimedelta() == -timedelta(hours=1)

    events = await sla_events(nats_server, ticket.name, 2)
    assert [e.type for e in events] == ["crm.servicedesk.v1.SlaWarning", "crm.servicedesk.v1.SlaBreached"]
    breach = events_pb2.SlaBreached()
    events[1].payload.Unpack(breach)
    assert breach.metric == cpb.SLA_METRIC_FIRST_RESPONSE
    assert breach.due_time.ToDatetime(tzinfo=UTC) == tuesday_11
    assert breach.breach_time.ToDatetime(tzinfo=UTC) == tuesday_11


async def test_pending_pauses_the_clock_and_moves_the_due_time(harness):
    await harness.policy(targets=pb.SlaTargets(resolution=hours(8)))
    ticket = await harness.ticket()
    monday_due = datetime(2026, 1, 5, 17, 0, tzinfo=UTC)
    assert await harness.due_at(BREACH_TIMER, ticket.name, SlaMetric.RESOLUTION) == monday_due

    harness.clock.set(datetime(2026, 1, 5, 11, 0, tzinfo=UTC))  # 2 business hours used
    await harness.tickets.HoldTicket(
        tpb.HoldTicketRequest(name=ticket.name, reason="customer"), metadata=harness.meta
    )
    assert await harness.due_at(BREACH_TIMER, ticket.name, SlaMetric.RESOLUTION) is None
    assert await harness.fire_at(datetime(2026, 1, 6, 17, 0, tzinfo=UTC)) == 0  # pending: nothing is due
    paused = (await harness.get(ticket.name)).sla.targets[0]
    assert paused.paused and paused.remaining.ToTimedelta() == timedelta(hours=6) and not paused.breached

    harness.clock.set(datetime(2026, 1, 7, 9, 0, tzinfo=UTC))  # resumed Wednesday morning: 6 h left
    await harness.tickets.ResumeTicket(tpb.ResumeTicketRequest(name=ticket.name), metadata=harness.meta)
    wednesday_due = datetime(2026, 1, 7, 15, 0, tzinfo=UTC)
    assert await harness.due_at(BREACH_TIMER, ticket.name, SlaMetric.RESOLUTION) == wednesday_due
    # 80 % = 6.4 h: 2 h before the pause, 4 h 24 min after it.
    assert await harness.due_at(WARNING_TIMER, ticket.name, SlaMetric.RESOLUTION) == datetime(
        2026, 1, 7, 13, 24, tzinfo=UTC
    )
    assert await harness.fire_at(wednesday_due - timedelta(seconds=1)) == 1  # the warning only
    assert not (await harness.get(ticket.name)).sla.targets[0].breached
    assert await harness.fire_at(wednesday_due) == 1
    assert (await harness.get(ticket.name)).sla.targets[0].breached


async def test_escalation_runs_once_even_when_the_breach_is_delivered_twice(harness, nats_server):
    await harness.policy(
        targets=pb.SlaTargets(first_response=hours(1)),
        escalations=[
            pb.EscalationAction(
                metric=cpb.SLA_METRIC_FIRST_RESPONSE, kind=cpb.ESCALATION_KIND_REASSIGN, assignee="lead"
            ),
            pb.EscalationAction(
                metric=cpb.SLA_METRIC_FIRST_RESPONSE, kind=cpb.ESCALATION_KIND_RAISE_PRIORITY
            ),
            pb.EscalationAction(
                metric=cpb.SLA_METRIC_FIRST_RESPONSE,
                kind=cpb.ESCALATION_KIND_NOTIFY,
                notify=["role:support_manager"],
            ),
            # Another metric's actions do not run on this breach.
            pb.EscalationAction(metric=cpb.SLA_METRIC_RESOLUTION, kind=cpb.ESCALATION_KIND_RAISE_PRIORITY),
        ],
    )
    ticket = await harness.ticket()
    assert ticket.priority == cpb.TICKET_PRIORITY_NORMAL
    ten = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    assert await harness.fire_at(ten) == 2  # warning (09:48) and breach (10:00)
    assert await harness.fire_at(ten) == 0

    # The breach timer delivered again (a redelivery after a crash, a second worker): nothing more.
    key = timer_key(ticket.name.removeprefix("tickets/"), SlaMetric.FIRST_RESPONSE, 1)
    for _ in range(2):
        async with harness.app.uow_factory() as uow:
            await harness.handlers[BREACH_TIMER](uow, Timer(kind=BREACH_TIMER, key=key, due_at=ten))
            await uow.commit()
    # Even the escalation itself, asked again for the same cycle, does nothing (the log's key).
    async with harness.app.uow_factory() as uow:
        current = await TicketRepository(uow.session).get(key.split(":")[0])
        policy_id = (await harness.get(ticket.name)).sla.policy.removeprefix("slaPolicies/")
        again = await escalate(uow, current, policy_id=policy_id, metric=SlaMetric.FIRST_RESPONSE, cycle=1)
        assert again == current
        await uow.commit()

    escalated = await harness.get(ticket.name)
    assert escalated.priority == cpb.TICKET_PRIORITY_HIGH  # one step, once
    assert escalated.assignee == "lead"
    assert escalated.sla.escalation_count == 1
    assert escalated.sla.targets[0].breached
    # Wait for a fourth event a little: exactly three must be there.
    events = await sla_events(nats_server, ticket.name, 4, within=2.0)
    assert [e.type for e in events] == [
        "crm.servicedesk.v1.SlaWarning",
        "crm.servicedesk.v1.SlaBreached",
        "crm.servicedesk.v1.TicketEscalated",
    ]
    escalation = events_pb2.TicketEscalated()
    events[2].payload.Unpack(escalation)
    assert list(escalation.actions) == [
        cpb.ESCALATION_KIND_REASSIGN,
        cpb.ESCALATION_KIND_RAISE_PRIORITY,
        cpb.ESCALATION_KIND_NOTIFY,
    ]
    assert list(escalation.notify) == ["role:support_manager"]
    assert escalation.ticket.priority == cpb.TICKET_PRIORITY_HIGH


async def test_an_agent_reply_before_the_due_time_achieves_it_without_breach(harness, nats_server):
    await harness.policy(targets=pb.SlaTargets(first_response=hours(1)))
    ticket = await harness.ticket()
    harness.clock.set(datetime(2026, 1, 5, 9, 30, tzinfo=UTC))
    await harness.tickets.AddTicketComment(
        tpb.AddTicketCommentRequest(parent=ticket.name, comment=tpb.TicketComment(body="Looking into it")),
        metadata=harness.meta,
    )
    assert await harness.due_at(BREACH_TIMER, ticket.name, SlaMetric.FIRST_RESPONSE) is None
    assert await harness.fire_at(datetime(2026, 1, 5, 12, 0, tzinfo=UTC)) == 0
    target = (await harness.get(ticket.name)).sla.targets[0]
    assert target.achieved_time.ToDatetime(tzinfo=UTC) == datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    assert not target.breached and not target.warned
    assert target.remaining.ToTimedelta() == timedelta(minutes=30)
    assert await sla_events(nats_server, ticket.name, 1, within=1.0) == []


async def test_breach_reassigns_to_the_escalation_team_by_its_strategy(harness, nats_server):
    teams = spb_grpc.SupportTeamServiceStub(harness.channel)
    await teams.CreateSupportTeam(
        spb.CreateSupportTeamRequest(
            support_team_id="tier2",
            support_team=spb.SupportTeam(
                members=[spb.TeamMember(agent="tina", available=True)],
                strategy=cpb.ASSIGNMENT_STRATEGY_ROUND_ROBIN,
            ),
        ),
        metadata=harness.meta,
    )
    await harness.policy(
        targets=pb.SlaTargets(resolution=hours(2)),
        escalations=[
            pb.EscalationAction(
                metric=cpb.SLA_METRIC_RESOLUTION, kind=cpb.ESCALATION_KIND_REASSIGN, team="tier2"
            )
        ],
    )
    ticket = await harness.ticket()
    assert await harness.fire_at(datetime(2026, 1, 5, 11, 0, tzinfo=UTC)) == 2  # warning, breach
    moved = await harness.get(ticket.name)
    assert (moved.team, moved.assignee, moved.sla.escalation_count) == ("tier2", "tina", 1)
    nc = await connect_nats(nats_server.url)
    try:
        assigned = [
            env
            for _, env in await stream_envelopes(nc.jetstream(), STREAM, "crm.servicedesk.ticket.assigned")
            if env.subject == ticket.name
        ]
    finally:
        await nc.close()
    event = events_pb2.TicketAssigned()
    assigned[-1].payload.Unpack(event)
    assert (event.cause, event.ticket.assignee, event.strategy) == (
        "escalation",
        "tina",
        cpb.ASSIGNMENT_STRATEGY_ROUND_ROBIN,
    )


async def test_each_customer_reply_starts_a_new_next_response_cycle(harness, nats_server, token_factory):
    customer = (("authorization", f"Bearer {token_factory(subject='carol', roles=('customer_portal',))}"),)
    await harness.policy(targets=pb.SlaTargets(first_response=hours(1), next_response=hours(2)))
    ticket = await harness.tickets.CreateTicket(
        tpb.CreateTicketRequest(ticket=tpb.Ticket(subject="Invoice wrong")), metadata=customer
    )

    async def reply(at: datetime, meta) -> None:
        harness.clock.set(at)
        await harness.tickets.AddTicketComment(
            tpb.AddTicketCommentRequest(parent=ticket.name, comment=tpb.TicketComment(body="...")),
            metadata=meta,
        )

    await reply(datetime(2026, 1, 5, 9, 10, tzinfo=UTC), harness.meta)  # first response met
    await reply(datetime(2026, 1, 5, 9, 20, tzinfo=UTC), customer)
    assert await harness.due_at(BREACH_TIMER, ticket.name, SlaMetric.NEXT_RESPONSE, 1) == datetime(
        2026, 1, 5, 11, 20, tzinfo=UTC
    )
    await reply(datetime(2026, 1, 5, 9, 40, tzinfo=UTC), harness.meta)  # answered: cycle 1 done
    assert await harness.due_at(BREACH_TIMER, ticket.name, SlaMetric.NEXT_RESPONSE, 1) is None
    await reply(datetime(2026, 1, 5, 10, 0, tzinfo=UTC), customer)
    noon = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    assert await harness.due_at(BREACH_TIMER, ticket.name, SlaMetric.NEXT_RESPONSE, 2) == noon

    # A stale timer of the finished cycle 1 fires and does nothing.
    async with harness.app.uow_factory() as uow:
        key = timer_key(ticket.name.removeprefix("tickets/"), SlaMetric.NEXT_RESPONSE, 1)
        await timers.schedule(uow, BREACH_TIMER, key, harness.clock.now())
        await uow.commit()
    assert await harness.fire_at(datetime(2026, 1, 5, 10, 0, 1, tzinfo=UTC)) == 1
    assert await harness.fire_at(noon) == 2  # cycle 2: warning (11:36) and breach
    events = await sla_events(nats_server, ticket.name, 3, within=2.0)
    assert [e.type for e in events] == ["crm.servicedesk.v1.SlaWarning", "crm.servicedesk.v1.SlaBreached"]
    breach = events_pb2.SlaBreached()
    events[1].payload.Unpack(breach)
    assert (breach.metric, breach.due_time.ToDatetime(tzinfo=UTC)) == (cpb.SLA_METRIC_NEXT_RESPONSE, noon)
    shown = {t.metric: t for t in (await harness.get(ticket.name)).sla.targets}
    assert shown[cpb.SLA_METRIC_NEXT_RESPONSE].breached and not shown[cpb.SLA_METRIC_FIRST_RESPONSE].breached
