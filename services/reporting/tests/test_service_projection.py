"""Servicedesk events published on the real CRM_SERVICEDESK stream build the ticket, SLA-breach and
CSAT read models (SQLite and PostgreSQL): hand-checked rows and the customer's service summary;
redelivering every event and a late older snapshot change nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from crm.customer.v1 import data_events_pb2
from crm.servicedesk.v1 import common_pb2 as sdc
from crm.servicedesk.v1 import events_pb2 as sd
from crm_reporting.adapters.projection_tables import timeline
from crm_reporting.adapters.service_tables import service_csat, service_sla_breaches, service_tickets
from crm_reporting.service.service_projection import customer_service_summary
from crm_shared.events.envelope import build_envelope, serialize_envelope
from crm_shared.ids import new_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

WAIT_SECONDS = 30.0

SUBJECTS = {
    sd.TicketCreated: "crm.servicedesk.ticket.created",
    sd.TicketUpdated: "crm.servicedesk.ticket.updated",
    sd.TicketAssigned: "crm.servicedesk.ticket.assigned",
    sd.TicketStatusChanged: "crm.servicedesk.ticket.status_changed",
    sd.TicketCommented: "crm.servicedesk.ticket.commented",
    sd.SlaWarning: "crm.servicedesk.sla.warning",
    sd.SlaBreached: "crm.servicedesk.sla.breached",
    sd.TicketEscalated: "crm.servicedesk.ticket.escalated",
    sd.CsatSubmitted: "crm.servicedesk.csat.submitted",
}


def the_app(reporting_service):
    [worker] = [w for w in reporting_service.parts.workers if getattr(w, "source", None) == "servicedesk"]
    return worker.app


def uid() -> str:
    return str(uuid.uuid4())


def ts(when: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(when)
    return stamp


async def publish(
    js, subject: str, payload, resource: str, when: datetime, *, source: str, event_id: str = ""
):
    """Publish like a producer's outbox relay; the same event_id again is a redelivery."""
    event_id = event_id or new_id()
    envelope = build_envelope(
        event_id=event_id,
        payload=payload,
        source=source,
        subject=resource,
        occurred_at=when,
        actor_subject="sys",
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


class Ticket:
    """One ticket's events, as the servicedesk publishes them."""

    def __init__(
        self, customer: str, *, assignee: str, team: str, created: datetime, policy: str = "slaPolicies/std"
    ):
        self.name = f"tickets/{uid()}"
        self.snap = sd.TicketSnapshot(
            name=self.name,
            number=f"T-{self.name[-6:]}",
            customer=customer,
            assignee=assignee,
            team=team,
            sla_policy=policy,
            status=sdc.TICKET_STATUS_NEW,
            create_time=ts(created),
        )
        self.events: list[tuple[object, datetime]] = []
        self.created = created
        self.events.append((sd.TicketCreated(ticket=self._copy()), created))

    def _copy(self) -> sd.TicketSnapshot:
        copy = sd.TicketSnapshot()
        copy.CopyFrom(self.snap)
        return copy

    def responded(self, when: datetime, business_seconds: int) -> Ticket:
        self.snap.status = sdc.TICKET_STATUS_OPEN
        self.snap.first_response_time.CopyFrom(ts(when))
        self.events.append(
            (
                sd.TicketCommented(
                    ticket=self._copy(),
                    comment=f"{self.name}/comments/{uid()}",
                    author=self.snap.assignee,
                    responded_metric=sdc.SLA_METRIC_FIRST_RESPONSE,
                    business_time_to_respond=Duration(seconds=business_seconds),
                ),
                when,
            )
        )
        return self

    def warned(self, when: datetime, metric: int, due: datetime) -> Ticket:
        self.events.append((sd.SlaWarning(ticket=self._copy(), metric=metric, due_time=ts(due)), when))
        return self

    def breached(self, when: datetime, metric: int) -> Ticket:
        self.events.append(
            (
                sd.SlaBreached(ticket=self._copy(), metric=metric, due_time=ts(when), breach_time=ts(when)),
                when,
            )
        )
        return self

    def assigned(self, when: datetime, assignee: str) -> Ticket:
        previous = self.snap.assignee
        self.snap.assignee = assignee
        self.events.append((sd.TicketAssigned(ticket=self._copy(), previous_assignee=previous), when))
        return self

    def resolved(self, when: datetime) -> Ticket:
        previous = self.snap.status
        self.snap.status = sdc.TICKET_STATUS_RESOLVED
        self.snap.resolve_time.CopyFrom(ts(when))
        self.events.append((sd.TicketStatusChanged(ticket=self._copy(), previous_status=previous), when))
        return self

    def csat(self, when: datetime, score: int, *, fcr: bool) -> Ticket:
        self.events.append(
            (
                sd.CsatSubmitted(
                    ticket=self.name,
                    customer=self.snap.customer,
                    score=score,
                    first_contact_resolution=fcr,
                    assignee=self.snap.assignee,
                    team=self.snap.team,
                    answer_time=ts(when),
                ),
                when,
            )
        )
        return self

    async def publish(self, js, *, ids: list | None = None) -> list[str]:
        sent = []
        for i, (payload, when) in enumerate(self.events):
            event_id = ids[i] if ids else ""
            sent.append(
                await publish(
                    js,
                    SUBJECTS[type(payload)],
                    payload,
                    self.name,
                    when,
                    source="servicedesk",
                    event_id=event_id,
                )
            )
        return sent


async def wait_ticket(app, name: str, **expected) -> bool:
    async def check():
        async with app.db.read_session() as session:
            row = (
                await session.execute(sa.select(service_tickets).where(service_tickets.c.ticket == name))
            ).first()
        return row is not None and all(getattr(row, k) == v for k, v in expected.items())

    return await eventually(check)


async def test_tickets_sla_and_csat_projected_idempotently(reporting_service):
    app, js = the_app(reporting_service), reporting_service.infrastructure.js
    customer = f"customers/{uid()}"
    now = datetime.now(UTC).replace(microsecond=0)
    t0 = now - timedelta(days=1)
    h = timedelta(hours=1)
    first = (
        Ticket(customer, assignee="ann", team="t1", created=t0)
        .responded(t0 + h, 600)
        .resolved(t0 + 4 * h)
        .csat(t0 + 5 * h, 5, fcr=True)
    )
    second = (
        Ticket(customer, assignee="ann", team="t1", created=t0 + h)
        .breached(t0 + 3 * h, sdc.SLA_METRIC_FIRST_RESPONSE)
        .assigned(t0 + 3 * h + timedelta(minutes=1), "bob")
    )
    ids_first = await first.publish(js)
    ids_second = await second.publish(js)
    assert await wait_ticket(app, second.name, assignee="bob", first_response_breached=True)
    assert await wait_ticket(
        app, first.name, status=sdc.TICKET_STATUS_RESOLVED, first_response_business_seconds=600
    )

    # Every event again (same event ids) and a late, older snapshot of the first ticket.
    await first.publish(js, ids=ids_first)
    await second.publish(js, ids=ids_second)
    stale = sd.TicketUpdated(ticket=first.events[0][0].ticket)
    await publish(js, SUBJECTS[sd.TicketUpdated], stale, first.name, t0 + 2 * h, source="servicedesk")
    sentinel = Ticket(f"customers/{uid()}", assignee="zed", team="t9", created=now)
    await sentinel.publish(js)
    assert await wait_ticket(app, sentinel.name, assignee="zed")

    async with app.db.read_session() as session:
        rows = {
            r.ticket: r
            for r in await session.execute(
                sa.select(service_tickets).where(service_tickets.c.customer == customer)
            )
        }
        breaches = (
            await session.execute(
                sa.select(service_sla_breaches).where(service_sla_breaches.c.customer == customer)
            )
        ).all()
        answers = (
            await session.execute(sa.select(service_csat).where(service_csat.c.customer == customer))
        ).all()
        kinds = sorted(
            (
                await session.execute(sa.select(timeline.c.kind).where(timeline.c.customer == customer))
            ).scalars()
        )
        summary = await customer_service_summary(session, customer, now)
    one = rows[first.name]
    assert one.status == sdc.TICKET_STATUS_RESOLVED
    assert one.resolve_time == t0 + 4 * h
    assert one.first_response_time == t0 + h
    assert not one.first_response_breached
    two = rows[second.name]
    assert two.status == sdc.TICKET_STATUS_NEW and two.assignee == "bob"
    assert [(b.ticket, b.metric, b.assignee) for b in breaches] == [(second.name, 1, "ann")]
    assert [(a.score, a.first_contact_resolution) for a in answers] == [(5, True)]
    assert kinds == ["csat", "sla_breached", "ticket_created", "ticket_created", "ticket_resolved"]
    assert summary.open_tickets == 1
    assert summary.recent_sla_breaches == 1
    assert summary.average_csat == 5.0
    assert summary.tickets_90d == 2


async def test_a_merge_moves_the_losers_service_history_to_the_survivor(reporting_service):
    app, js = the_app(reporting_service), reporting_service.infrastructure.js
    loser, survivor = f"customers/{uid()}", f"customers/{uid()}"
    now = datetime.now(UTC).replace(microsecond=0)
    ticket = Ticket(loser, assignee="ann", team="t1", created=now - timedelta(hours=3))
    ticket.breached(now - timedelta(hours=2), sdc.SLA_METRIC_RESOLUTION).csat(
        now - timedelta(hours=1), 2, fcr=False
    )
    await ticket.publish(js)
    assert await wait_ticket(app, ticket.name, resolution_breached=True)

    async def csat_of_loser():
        async with app.db.read_session() as session:
            return (await customer_service_summary(session, loser, now)).average_csat == 2.0

    assert await eventually(csat_of_loser)
    await publish(
        js,
        "crm.customer.customer.merged",
        data_events_pb2.CustomerMerged(survivor=survivor, losers=[loser]),
        survivor,
        now,
        source="customer",
    )
    assert await wait_ticket(app, ticket.name, customer=survivor)

    async def moved():
        async with app.db.read_session() as session:
            return await customer_service_summary(session, survivor, now)

    summary = await eventually(moved)
    assert (summary.open_tickets, summary.recent_sla_breaches, summary.average_csat) == (1, 1, 2.0)
