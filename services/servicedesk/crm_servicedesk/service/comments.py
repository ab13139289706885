"""Ticket comments: public replies and internal notes, and what each does to the ticket.

- An internal note changes nothing on the ticket and is never shown to customer_portal callers.
- An agent's public reply records the first response once, counts the reply and moves
  NEW -> OPEN; the SLA decides which response target it met (TicketCommented carries it).
- A customer's reply (customer_portal) resumes a PENDING ticket and starts the next-response
  clock (the SLA's "customer_reply").
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from crm.servicedesk.v1 import common_pb2, events_pb2
from crm_servicedesk.adapters.ticket_repository import TicketRepository
from crm_servicedesk.domain import tickets as rules
from crm_servicedesk.domain.tickets import TicketComment
from crm_servicedesk.service import sla
from crm_servicedesk.service.ticket_events import (
    SUBJECT_COMMENTED,
    duration,
    emit_status_changed,
    policy_of,
    snapshot,
)
from crm_servicedesk.service.tickets import customer_facing, visible_ticket
from crm_shared.aip.paging import Page, parse_list_request
from crm_shared.errors import InvalidArgument
from crm_shared.ids import new_id
from crm_shared.principal import Principal

MAX_BODY = 20000


def _metric_pb(metric) -> int:
    """The SLA's responded metric (a name like "first_response", an enum member or a number)."""
    if metric is None or metric == "":
        return common_pb2.SLA_METRIC_UNSPECIFIED
    if isinstance(metric, int):
        return metric
    label = str(getattr(metric, "value", metric)).upper()
    return common_pb2.SlaMetric.Value(label if label.startswith("SLA_METRIC_") else f"SLA_METRIC_{label}")


def _commented_event(ticket, comment: TicketComment, change) -> events_pb2.TicketCommented:
    event = events_pb2.TicketCommented(
        ticket=snapshot(ticket, sla_policy=policy_of(change)),
        comment=comment.name,
        internal=comment.internal,
        from_customer=comment.from_customer,
        author=comment.author,
    )
    metric = getattr(change, "responded_metric", None)
    if metric:
        event.responded_metric = _metric_pb(metric)
        took = getattr(change, "business_time_to_respond", None)
        if isinstance(took, timedelta):
            event.business_time_to_respond.CopyFrom(duration(took.total_seconds()))
    return event


async def add_comment(
    uow, deps, principal: Principal, ticket_id: str, *, body: str, internal: bool
) -> TicketComment:
    from_customer = customer_facing(deps, principal)
    if from_customer and internal:
        raise InvalidArgument.for_field("comment.internal", "customers cannot write internal notes")
    if not body.strip():
        raise InvalidArgument.for_field("comment.body", "is required")
    if len(body) > MAX_BODY:
        raise InvalidArgument.for_field("comment.body", f"at most {MAX_BODY} characters")
    current = await visible_ticket(uow.session, deps, principal, ticket_id, "comment", lock=True)
    rules.require_status(current, "comment")
    comment = TicketComment(
        id=new_id(),
        ticket_id=current.id,
        body=body,
        internal=internal,
        author=principal.subject,
        from_customer=from_customer,
        create_time=uow.now,
    )
    repo = TicketRepository(uow.session)
    await repo.add_comment(comment)
    ticket, change = current, None
    if not internal:
        if from_customer:
            ticket, event = rules.customer_replied(current, uow.now), "customer_reply"
        else:
            ticket, event = rules.agent_replied(current, uow.now), "agent_reply"
        await repo.save(ticket, current.row_version)
        change = await sla.recompute(uow, ticket, event=event, actor=principal.subject)
        if ticket.status is not current.status:
            emit_status_changed(
                uow,
                ticket,
                previous_status=current.status,
                actor=principal.subject,
                sla_policy=policy_of(change),
            )
    uow.emit(SUBJECT_COMMENTED, _commented_event(ticket, comment, change), resource=ticket.name)
    uow.audit("commented", ticket.name, ["internal"] if internal else ["public"])
    return comment


async def list_comments(
    session: AsyncSession, deps, principal: Principal, ticket_id: str, *, page_size: int, page_token: str
) -> Page:
    """Oldest first; internal notes only for the support side."""
    ticket = await visible_ticket(session, deps, principal, ticket_id, "read")
    include_internal = not customer_facing(deps, principal)
    request = parse_list_request(
        deps.page_tokens,
        collection="ticketComments",
        caller=principal.subject,
        page_size=page_size,
        page_token=page_token,
        order_by="create_time",
        orderable=("create_time",),
        default_order="create_time",
        extra=(ticket.id, str(include_internal)),
    )
    rows = await TicketRepository(session).list_comments(
        ticket.id, include_internal=include_internal, after=request.after, limit=request.limit + 1
    )
    return request.page(rows, deps.page_tokens, key=lambda c: [c.create_time, c.id])
