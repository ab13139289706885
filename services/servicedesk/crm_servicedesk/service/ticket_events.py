"""A ticket as the events carry it (TicketSnapshot) and the ticket events themselves.

Events never carry ticket text or personal data (events.proto): ids, categories and times.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from google.protobuf import duration_pb2, timestamp_pb2

from crm.servicedesk.v1 import common_pb2, events_pb2
from crm_servicedesk.domain.assignment import AssignmentStrategy
from crm_servicedesk.domain.tickets import Ticket, TicketChannel, TicketPriority, TicketStatus, TicketType

SUBJECT_CREATED = "crm.servicedesk.ticket.created"
SUBJECT_UPDATED = "crm.servicedesk.ticket.updated"
SUBJECT_ASSIGNED = "crm.servicedesk.ticket.assigned"
SUBJECT_STATUS_CHANGED = "crm.servicedesk.ticket.status_changed"
SUBJECT_COMMENTED = "crm.servicedesk.ticket.commented"

TYPE_TO_PB = {t: common_pb2.TicketType.Value(f"TICKET_TYPE_{t.name}") for t in TicketType}
CHANNEL_TO_PB = {c: common_pb2.TicketChannel.Value(f"TICKET_CHANNEL_{c.name}") for c in TicketChannel}
PRIORITY_TO_PB = {p: common_pb2.TicketPriority.Value(f"TICKET_PRIORITY_{p.name}") for p in TicketPriority}
STATUS_TO_PB = {s: common_pb2.TicketStatus.Value(f"TICKET_STATUS_{s.name}") for s in TicketStatus}
STRATEGY_TO_PB = {
    s: common_pb2.AssignmentStrategy.Value(f"ASSIGNMENT_STRATEGY_{s.name}") for s in AssignmentStrategy
}


def timestamp(moment: datetime | None) -> timestamp_pb2.Timestamp | None:
    """A protobuf Timestamp, or None (leave the field unset) for no time."""
    if moment is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(moment.astimezone(UTC))
    return ts


def duration(seconds: float) -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromNanoseconds(round(seconds * 1e9))
    return value


def policy_of(change) -> str:
    """The SLA policy a recompute reported ("" when none applies: recompute returned None)."""
    return getattr(change, "policy", "") if change is not None else ""


def snapshot(ticket: Ticket, *, sla_policy: str = "") -> events_pb2.TicketSnapshot:
    return events_pb2.TicketSnapshot(
        name=ticket.name,
        number=ticket.number,
        type=TYPE_TO_PB[ticket.type],
        channel=CHANNEL_TO_PB[ticket.channel],
        priority=PRIORITY_TO_PB[ticket.priority],
        status=STATUS_TO_PB[ticket.status],
        customer=ticket.customer,
        assignee=ticket.assignee,
        team=ticket.team,
        sla_policy=sla_policy,
        create_time=timestamp(ticket.create_time),
        first_response_time=timestamp(ticket.first_response_time),
        resolve_time=timestamp(ticket.resolve_time),
        reopen_count=ticket.reopen_count,
        tags=list(ticket.tags),
    )


def emit_ticket_created(uow, ticket: Ticket, *, sla_policy: str = "") -> None:
    uow.emit(
        SUBJECT_CREATED,
        events_pb2.TicketCreated(ticket=snapshot(ticket, sla_policy=sla_policy)),
        resource=ticket.name,
    )
    uow.audit("created", ticket.name, ["type", "channel", "priority", "customer", "team"])


def emit_ticket_updated(uow, ticket: Ticket, changed_fields: Sequence[str], *, sla_policy: str = "") -> None:
    uow.emit(
        SUBJECT_UPDATED,
        events_pb2.TicketUpdated(
            ticket=snapshot(ticket, sla_policy=sla_policy), changed_fields=list(changed_fields)
        ),
        resource=ticket.name,
    )
    uow.audit("updated", ticket.name, list(changed_fields))


def emit_ticket_assigned(
    uow,
    ticket: Ticket,
    *,
    previous_assignee: str,
    previous_team: str,
    strategy: AssignmentStrategy,
    cause: str = "",
    sla_policy: str = "",
) -> None:
    uow.emit(
        SUBJECT_ASSIGNED,
        events_pb2.TicketAssigned(
            ticket=snapshot(ticket, sla_policy=sla_policy),
            previous_assignee=previous_assignee,
            previous_team=previous_team,
            strategy=STRATEGY_TO_PB[strategy],
            cause=cause,
        ),
        resource=ticket.name,
    )
    uow.audit("assigned", ticket.name, ["assignee", "team"])


def emit_status_changed(
    uow, ticket: Ticket, *, previous_status: TicketStatus, actor: str, sla_policy: str = ""
) -> None:
    uow.emit(
        SUBJECT_STATUS_CHANGED,
        events_pb2.TicketStatusChanged(
            ticket=snapshot(ticket, sla_policy=sla_policy),
            previous_status=STATUS_TO_PB[previous_status],
            actor=actor,
        ),
        resource=ticket.name,
    )
    uow.audit(f"status_{ticket.status.value}", ticket.name, ["status"])
