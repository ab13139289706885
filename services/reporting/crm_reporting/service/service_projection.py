"""Servicedesk projection: tickets, SLA breaches and CSAT answers from CRM_SERVICEDESK events.

Every ticket event carries the whole TicketSnapshot: the newest snapshot (by occurred_at) wins,
an older one redelivered late is ignored. Facts that only some events carry are sticky: the
business time to the first response (TicketCommented.responded_metric), the breached flags
(SlaBreached), one row per breach and one CSAT answer per ticket — so redelivery and
reordering never change the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from crm.customer.v1 import data_events_pb2
from crm.servicedesk.v1 import events_pb2 as sd
from crm_reporting.adapters.agenda_tables import agenda_items
from crm_reporting.adapters.customer_tables import report_customers
from crm_reporting.adapters.projection_tables import dialect_insert
from crm_reporting.adapters.service_tables import service_csat, service_sla_breaches, service_tickets
from crm_reporting.domain import service_metrics as rules
from crm_reporting.service import timeline
from crm_shared.events.envelope import occurred_at

RECENT = timedelta(days=90)


def _ts(message, name: str) -> datetime | None:
    if not message.HasField(name):
        return None
    return getattr(message, name).ToDatetime(tzinfo=UTC)


def _actor(envelope) -> str:
    return envelope.actor.subject if envelope.HasField("actor") else ""


async def survivor_of(session, customer: str) -> str:
    """The customer a merged customer now lives on (CustomerMerged on CRM_CUSTOMER), else itself:
    a ticket event of a loser delivered after the merge lands on the survivor too."""
    seen = {customer}
    while customer:
        merged_into = await session.scalar(
            sa.select(report_customers.c.merged_into).where(report_customers.c.customer == customer)
        )
        if not merged_into or merged_into in seen:
            return customer
        seen.add(merged_into)
        customer = merged_into
    return customer


async def customer_merged(uow, envelope, payload: data_events_pb2.CustomerMerged) -> None:
    """The losers' tickets, breaches, CSAT answers and reminders now belong to the survivor."""
    losers = [loser for loser in payload.losers if loser and loser != payload.survivor]
    if not losers:
        return
    for table in (service_tickets, service_sla_breaches, service_csat, agenda_items):
        await uow.session.execute(
            sa.update(table).where(table.c.customer.in_(losers)).values(customer=payload.survivor)
        )


async def apply_snapshot(session, snapshot: sd.TicketSnapshot, event_time: datetime) -> None:
    """Upsert the ticket from its snapshot unless a newer snapshot was applied already."""
    values = dict(
        customer=await survivor_of(session, snapshot.customer),
        assignee=snapshot.assignee,
        team=snapshot.team,
        status=int(snapshot.status),
        priority=int(snapshot.priority),
        sla_policy=snapshot.sla_policy,
        create_time=_ts(snapshot, "create_time"),
        first_response_time=_ts(snapshot, "first_response_time"),
        resolve_time=_ts(snapshot, "resolve_time"),
        reopen_count=snapshot.reopen_count,
        event_time=event_time,
    )
    insert = dialect_insert(session, service_tickets).values(ticket=snapshot.name, **values)
    await session.execute(
        insert.on_conflict_do_update(
            index_elements=["ticket"],
            set_={name: insert.excluded[name] for name in values},
            where=sa.or_(
                service_tickets.c.event_time.is_(None),
                service_tickets.c.event_time <= insert.excluded.event_time,
            ),
        )
    )


async def ticket_created(uow, envelope, payload: sd.TicketCreated) -> None:
    when = occurred_at(envelope)
    await apply_snapshot(uow.session, payload.ticket, when)
    await timeline.record(
        uow,
        key=f"{envelope.id}:ticket_created",
        customer=await survivor_of(uow.session, payload.ticket.customer),
        time=_ts(payload.ticket, "create_time") or when,
        kind="ticket_created",
        resource=payload.ticket.name,
        summary=f"ticket {payload.ticket.number} created",
        actor=_actor(envelope),
    )


async def ticket_snapshot(uow, envelope, payload) -> None:
    """TicketUpdated / TicketAssigned / TicketEscalated / SlaWarning: the snapshot only."""
    await apply_snapshot(uow.session, payload.ticket, occurred_at(envelope))


async def ticket_status_changed(uow, envelope, payload: sd.TicketStatusChanged) -> None:
    when = occurred_at(envelope)
    await apply_snapshot(uow.session, payload.ticket, when)
    if payload.ticket.status == rules.STATUS_RESOLVED:
        await timeline.record(
            uow,
            key=f"{envelope.id}:ticket_resolved",
            customer=await survivor_of(uow.session, payload.ticket.customer),
            time=_ts(payload.ticket, "resolve_time") or when,
            kind="ticket_resolved",
            resource=payload.ticket.name,
            summary=f"ticket {payload.ticket.number} resolved",
            actor=_actor(envelope),
        )


async def ticket_commented(uow, envelope, payload: sd.TicketCommented) -> None:
    await apply_snapshot(uow.session, payload.ticket, occurred_at(envelope))
    if payload.responded_metric == rules.METRIC_FIRST_RESPONSE and payload.HasField(
        "business_time_to_respond"
    ):
        seconds = payload.business_time_to_respond.ToTimedelta().total_seconds()
        await uow.session.execute(
            sa.update(service_tickets)
            .where(
                service_tickets.c.ticket == payload.ticket.name,
                service_tickets.c.first_response_business_seconds.is_(None),
            )
            .values(first_response_business_seconds=seconds)
        )


async def sla_breached(uow, envelope, payload: sd.SlaBreached) -> None:
    when = occurred_at(envelope)
    ticket = payload.ticket
    await apply_snapshot(uow.session, ticket, when)
    customer = await survivor_of(uow.session, ticket.customer)
    flag = {
        rules.METRIC_FIRST_RESPONSE: "first_response_breached",
        rules.METRIC_RESOLUTION: "resolution_breached",
    }.get(int(payload.metric))
    if flag:
        await uow.session.execute(
            sa.update(service_tickets).where(service_tickets.c.ticket == ticket.name).values({flag: True})
        )
    due = _ts(payload, "due_time")
    breach_time = _ts(payload, "breach_time") or when
    insert = dialect_insert(uow.session, service_sla_breaches).values(
        key=f"{ticket.name}:{int(payload.metric)}:{due.isoformat() if due else envelope.id}",
        ticket=ticket.name,
        customer=customer,
        metric=int(payload.metric),
        assignee=ticket.assignee,
        team=ticket.team,
        due_time=due,
        breach_time=breach_time,
    )
    await uow.session.execute(insert.on_conflict_do_nothing(index_elements=["key"]))
    await timeline.record(
        uow,
        key=f"{envelope.id}:sla_breached",
        customer=customer,
        time=breach_time,
        kind="sla_breached",
        resource=ticket.name,
        summary=f"ticket {ticket.number} breached {sd_metric_name(payload.metric)}",
    )


def sd_metric_name(metric: int) -> str:
    return {1: "first response", 2: "next response", 3: "resolution"}.get(int(metric), "SLA")


async def csat_submitted(uow, envelope, payload: sd.CsatSubmitted) -> None:
    answer_time = _ts(payload, "answer_time") or occurred_at(envelope)
    customer = await survivor_of(uow.session, payload.customer)
    values = dict(
        customer=customer,
        assignee=payload.assignee,
        team=payload.team,
        score=payload.score,
        first_contact_resolution=payload.first_contact_resolution,
        answer_time=answer_time,
    )
    insert = dialect_insert(uow.session, service_csat).values(ticket=payload.ticket, **values)
    await uow.session.execute(
        insert.on_conflict_do_update(
            index_elements=["ticket"],
            set_={name: insert.excluded[name] for name in values},
            where=service_csat.c.answer_time <= insert.excluded.answer_time,
        )
    )
    await timeline.record(
        uow,
        key=f"{envelope.id}:csat",
        customer=customer,
        time=answer_time,
        kind="csat",
        resource=payload.ticket,
        summary=f"CSAT {payload.score}/5",
    )


def register(registry, app) -> None:
    registry.on("customer", data_events_pb2.CustomerMerged, customer_merged)
    registry.on("servicedesk", sd.TicketCreated, ticket_created)
    registry.on("servicedesk", sd.TicketUpdated, ticket_snapshot)
    registry.on("servicedesk", sd.TicketAssigned, ticket_snapshot)
    registry.on("servicedesk", sd.TicketStatusChanged, ticket_status_changed)
    registry.on("servicedesk", sd.TicketCommented, ticket_commented)
    registry.on("servicedesk", sd.SlaWarning, ticket_snapshot)
    registry.on("servicedesk", sd.SlaBreached, sla_breached)
    registry.on("servicedesk", sd.TicketEscalated, ticket_snapshot)
    registry.on("servicedesk", sd.CsatSubmitted, csat_submitted)


# --- the customer 360's service part ---------------------------------------------------------


@dataclass(frozen=True)
class ServiceSummary:
    open_tickets: int = 0
    # Breaches in the last 90 days.
    recent_sla_breaches: int = 0
    # Mean CSAT score (1-5) of every answer; 0.0 without answers.
    average_csat: float = 0.0
    # Tickets created in the last 90 days.
    tickets_90d: int = 0


async def customer_service_summary(session, customer: str, now: datetime) -> ServiceSummary:
    since = now - RECENT
    t = service_tickets.c
    row = (
        await session.execute(
            sa.select(
                sa.func.count().filter(t.status.in_(sorted(rules.OPEN_STATUSES))),
                sa.func.count().filter(t.create_time >= since),
            ).where(t.customer == customer)
        )
    ).one()
    breaches = await session.scalar(
        sa.select(sa.func.count()).where(
            service_sla_breaches.c.customer == customer, service_sla_breaches.c.breach_time >= since
        )
    )
    csat = await session.scalar(
        sa.select(sa.func.avg(service_csat.c.score)).where(service_csat.c.customer == customer)
    )
    return ServiceSummary(
        open_tickets=int(row[0] or 0),
        recent_sla_breaches=int(breaches or 0),
        average_csat=float(csat) if csat is not None else 0.0,
        tickets_90d=int(row[1] or 0),
    )
