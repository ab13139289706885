"""Protobuf <-> domain for tickets, their comments and the customer snapshot."""

from __future__ import annotations

from datetime import datetime

from crm.servicedesk.v1 import common_pb2
from crm.servicedesk.v1 import ticket_service_pb2 as pb
from crm_servicedesk.api.sla_mappers import ticket_sla_to_pb
from crm_servicedesk.domain.assignment import AssignmentStrategy
from crm_servicedesk.domain.tickets import (
    SnapshotState,
    Ticket,
    TicketChannel,
    TicketComment,
    TicketInput,
    TicketPriority,
    TicketType,
)
from crm_servicedesk.service.ticket_events import (
    CHANNEL_TO_PB,
    PRIORITY_TO_PB,
    STATUS_TO_PB,
    TYPE_TO_PB,
    timestamp,
)
from crm_shared.aip.etag import etag_for

SNAPSHOT_STATE_TO_PB = {
    s: pb.CustomerSnapshotState.Value(f"CUSTOMER_SNAPSHOT_STATE_{s.name}") for s in SnapshotState
}
TYPE_FROM_PB = {value: key for key, value in TYPE_TO_PB.items()}
CHANNEL_FROM_PB = {value: key for key, value in CHANNEL_TO_PB.items()}
PRIORITY_FROM_PB = {value: key for key, value in PRIORITY_TO_PB.items()}
STRATEGY_FROM_PB = {
    common_pb2.AssignmentStrategy.Value(f"ASSIGNMENT_STRATEGY_{s.name}"): s for s in AssignmentStrategy
}


def ticket_input(message: pb.Ticket) -> TicketInput:
    """What the caller set (an UNSPECIFIED enum means "not given": the default applies)."""
    ticket_type: TicketType | None = TYPE_FROM_PB.get(message.type)
    channel: TicketChannel | None = CHANNEL_FROM_PB.get(message.channel)
    priority: TicketPriority | None = PRIORITY_FROM_PB.get(message.priority)
    return TicketInput(
        subject=message.subject,
        description=message.description,
        type=ticket_type,
        channel=channel,
        priority=priority,
        customer=message.customer,
        contact=message.contact,
        team=message.team,
        tags=list(message.tags),
    )


def strategy_from_pb(value: int) -> AssignmentStrategy | None:
    return STRATEGY_FROM_PB.get(value)


def customer_snapshot_to_pb(ticket: Ticket) -> pb.CustomerSnapshot:
    return pb.CustomerSnapshot(
        state=SNAPSHOT_STATE_TO_PB[ticket.snapshot_state],
        display_name=ticket.customer_name,
        tier=ticket.customer_tier,
        lifecycle_stage=ticket.customer_lifecycle,
        owner=ticket.customer_owner,
        team=ticket.customer_team,
        fetch_time=timestamp(ticket.snapshot_time),
    )


def ticket_to_pb(
    ticket: Ticket, sla_view=None, *, internal_fields: bool = True, now: datetime | None = None
) -> pb.Ticket:
    """The ticket as the API shows it.

    internal_fields=False (customer_portal callers): no assignee, team, SLA, pending reason or
    customer snapshot; those are the support side's working data, not the customer's.
    """
    message = pb.Ticket(
        name=ticket.name,
        number=ticket.number,
        type=TYPE_TO_PB[ticket.type],
        channel=CHANNEL_TO_PB[ticket.channel],
        subject=ticket.subject,
        description=ticket.description,
        priority=PRIORITY_TO_PB[ticket.priority],
        status=STATUS_TO_PB[ticket.status],
        customer=ticket.customer,
        contact=ticket.contact,
        tags=list(ticket.tags),
        first_response_time=timestamp(ticket.first_response_time),
        resolve_time=timestamp(ticket.resolve_time),
        close_time=timestamp(ticket.close_time),
        reopen_count=ticket.reopen_count,
        resolution=ticket.resolution,
        requester=ticket.requester,
        create_time=timestamp(ticket.create_time),
        update_time=timestamp(ticket.update_time),
        etag=etag_for(ticket.id, ticket.row_version),
    )
    if internal_fields:
        message.assignee = ticket.assignee
        message.team = ticket.team
        message.pending_reason = ticket.pending_reason
        message.customer_snapshot.CopyFrom(customer_snapshot_to_pb(ticket))
        if sla_view is not None:
            message.sla.CopyFrom(ticket_sla_to_pb(sla_view, now or ticket.update_time))
    return message


def comment_to_pb(comment: TicketComment) -> pb.TicketComment:
    return pb.TicketComment(
        name=comment.name,
        body=comment.body,
        internal=comment.internal,
        author=comment.author,
        from_customer=comment.from_customer,
        create_time=timestamp(comment.create_time),
    )
