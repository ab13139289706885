"""crm_sla_breaches_total / crm_sla_warnings_total: one per real warning or breach, as Prometheus sees them.

The servicedesk runs (SQLite and PostgreSQL, real NATS) with a ManualClock and its timer worker
stopped; the test moves the clock and fires due timers itself, like test_sla_timers. Counts are
read from the process's default registry, the one /metrics serves, as differences.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import duration_pb2
from google.type import dayofweek_pb2
from prometheus_client import REGISTRY
from servicedesk_testkit import servicedesk_settings

from crm.servicedesk.v1 import common_pb2 as cpb
from crm.servicedesk.v1 import sla_service_pb2 as pb
from crm.servicedesk.v1 import sla_service_pb2_grpc as pb_grpc
from crm.servicedesk.v1 import ticket_service_pb2 as tpb
from crm.servicedesk.v1 import ticket_service_pb2_grpc as tpb_grpc
from crm_servicedesk.api.sla import SlaServicer
from crm_servicedesk.bootstrap import build
from crm_servicedesk.domain.sla import SlaMetric
from crm_servicedesk.service.sla import BREACH_TIMER, timer_key
from crm_servicedesk.timers import timer_handlers
from crm_shared.clock import ManualClock
from crm_shared.runtime import start_service
from crm_shared.timers import Timer, TimerScheduler

pytestmark = pytest.mark.asyncio(loop_scope="session")

MONDAY_9 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
URGENT_FIRST_RESPONSE = {"metric": "first_response", "priority": "urgent"}


def count(name: str, labels: dict[str, str] = URGENT_FIRST_RESPONSE) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Desk:
    """A servicedesk with one office-hours policy (first response in 1 business hour)."""

    def __init__(self, running, clock: ManualClock, channel, meta) -> None:
        self.clock, self.meta = clock, meta
        self.tickets = tpb_grpc.TicketServiceStub(channel)
        self.sla = pb_grpc.SlaServiceStub(channel)
        self.app = next(s for _, s in running.parts.servicers if isinstance(s, SlaServicer))._app
        self.handlers = timer_handlers(self.app)
        self.scheduler = TimerScheduler(
            self.app.db,
            self.app.uow_factory.tables,
            self.app.uow_factory,
            clock=clock,
            handlers=self.handlers,
        )

    async def one_hour_first_response_policy(self) -> None:
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
        one_hour = duration_pb2.Duration()
        one_hour.FromTimedelta(timedelta(hours=1))
        await self.sla.CreateSlaPolicy(
            pb.CreateSlaPolicyRequest(
                sla_policy=pb.SlaPolicy(
                    active=True, calendar=calendar.name, targets=pb.SlaTargets(first_response=one_hour)
                )
            ),
            metadata=self.meta,
        )

    async def urgent_ticket(self) -> tpb.Ticket:
        return await self.tickets.CreateTicket(
            tpb.CreateTicketRequest(
                ticket=tpb.Ticket(subject="Site down", priority=cpb.TICKET_PRIORITY_URGENT)
            ),
            metadata=self.meta,
        )

    async def fire_at(self, moment: datetime) -> int:
        self.clock.set(moment)
        return await self.scheduler.run_due()

    def breach_timer(self, ticket: tpb.Ticket) -> Timer:
        key = timer_key(ticket.name.removeprefix("tickets/"), SlaMetric.FIRST_RESPONSE, 1)
        return Timer(kind=BREACH_TIMER, key=key, due_at=self.clock.now())


@pytest.fixture
async def desk(database_url, nats_server, jwt_keys, token_factory):
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
            desk = Desk(running, clock, channel, meta)
            await desk.one_hour_first_response_policy()
            yield desk
    finally:
        await running.stop(1)


async def test_a_breach_and_its_warning_count_once_each_even_when_redelivered(desk):
    warnings_before = count("crm_sla_warnings_total")
    breaches_before = count("crm_sla_breaches_total")
    ticket = await desk.urgent_ticket()

    assert await desk.fire_at(datetime(2026, 1, 5, 9, 48, tzinfo=UTC)) == 1  # the warning at 80 %
    assert count("crm_sla_warnings_total") == warnings_before + 1
    assert count("crm_sla_breaches_total") == breaches_before

    assert await desk.fire_at(datetime(2026, 1, 5, 10, 0, tzinfo=UTC)) == 1
    assert count("crm_sla_breaches_total") == breaches_before + 1

    # The breach timer delivered again (a crash before the ack, a second worker): no second breach.
    for _ in range(2):
        async with desk.app.uow_factory() as uow:
            await desk.handlers[BREACH_TIMER](uow, desk.breach_timer(ticket))
            await uow.commit()
    assert count("crm_sla_breaches_total") == breaches_before + 1
    assert count("crm_sla_warnings_total") == warnings_before + 1


async def test_a_breach_rolled_back_is_not_counted_until_it_commits(desk):
    before = count("crm_sla_breaches_total")
    ticket = await desk.urgent_ticket()
    desk.clock.set(datetime(2026, 1, 5, 10, 0, tzinfo=UTC))

    # The handler ran but its transaction did not commit (e.g. the escalation or COMMIT failed).
    async with desk.app.uow_factory() as uow:
        await desk.handlers[BREACH_TIMER](uow, desk.breach_timer(ticket))
    assert count("crm_sla_breaches_total") == before

    # The timer is still there and fires for real: now it counts, once.
    assert await desk.fire_at(datetime(2026, 1, 5, 10, 0, tzinfo=UTC)) == 2  # warning and breach
    assert count("crm_sla_breaches_total") == before + 1
    assert (
        (await desk.tickets.GetTicket(tpb.GetTicketRequest(name=ticket.name), metadata=desk.meta))
        .sla.targets[0]
        .breached
    )
