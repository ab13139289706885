"""Escalation on an SLA breach: the policy's actions for the breached metric, once per clock cycle.

Exactly once: the escalation-log row (primary key ticket, metric, cycle) is inserted in the
same unit of work as the actions; a second delivery of the breach timer finds the row and does
nothing, and a failure rolls back the row together with the actions, so the retry runs them.
"""

from __future__ import annotations

import logging

from crm_servicedesk.adapters.sla_repository import ClockRepository, PolicyRepository
from crm_servicedesk.adapters.ticket_repository import TicketRepository
from crm_servicedesk.domain import tickets as ticket_rules
from crm_servicedesk.domain.sla import EscalationAction, EscalationKind, SlaMetric
from crm_servicedesk.domain.tickets import Ticket
from crm_servicedesk.service import sla
from crm_servicedesk.service.sla_events import emit_escalated
from crm_servicedesk.service.ticket_events import emit_ticket_updated
from crm_shared.errors import DomainError

log = logging.getLogger(__name__)

ESCALATION_CAUSE = "escalation"


async def escalate(uow, ticket: Ticket, *, policy_id: str, metric: SlaMetric, cycle: int) -> Ticket:
    """Run the policy's escalation actions for `metric`; returns the ticket as they left it."""
    policy = await PolicyRepository(uow.session).get(policy_id)
    actions = policy.escalations_for(metric) if policy is not None else []
    if not actions:
        return ticket
    first_time = await ClockRepository(uow.session).record_escalation(
        ticket.id, metric, cycle, policy_id=policy_id, actions=[a.kind.value for a in actions], now=uow.now
    )
    if not first_time:
        return ticket
    notify: list[str] = []
    for action in actions:
        if action.kind is EscalationKind.REASSIGN:
            ticket = await _reassign(uow, ticket, action)
        elif action.kind is EscalationKind.RAISE_PRIORITY:
            ticket = await _raise_priority(uow, ticket)
        else:
            notify.extend(recipient for recipient in action.notify if recipient not in notify)
    emit_escalated(
        uow,
        ticket,
        policy=sla.policy_name(policy_id),
        metric=metric,
        actions=[action.kind for action in actions],
        notify=notify,
    )
    return ticket


async def _reassign(uow, ticket: Ticket, action: EscalationAction) -> Ticket:
    # Imported here: assignment recomputes the SLA, which this module's callers also import.
    from crm_servicedesk.service.assignment import assign

    try:
        return await assign(
            uow, ticket, team=action.team or ticket.team, assignee=action.assignee, cause=ESCALATION_CAUSE
        )
    except DomainError as error:
        # A team or agent that no longer fits must not block the breach and the other actions.
        log.warning("escalation of %s could not reassign: %s", ticket.name, error)
        return ticket


async def _raise_priority(uow, ticket: Ticket) -> Ticket:
    raised = ticket.priority.raised()
    if raised is ticket.priority:
        return ticket
    updated = ticket_rules.touched(ticket, uow.now, priority=raised)
    await TicketRepository(uow.session).save(updated, ticket.row_version)
    # A new priority may select another policy (tighter targets): the clocks follow at once.
    change = await sla.recompute(uow, updated, event="updated", actor=uow.actor_subject)
    emit_ticket_updated(uow, updated, ["priority"], sla_policy=change.policy if change else "")
    return updated
