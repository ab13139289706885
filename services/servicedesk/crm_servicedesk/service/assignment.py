"""Assigning a ticket within a team: manual, round-robin or least-loaded (one use case for all callers).

AssignTicket, ticket creation (a team with an automatic strategy) and the SLA's REASSIGN
escalation all go through `assign`, so the turn, the events and the SLA recompute are the same
whoever moves the ticket. The team row is locked while choosing (PostgreSQL; SQLite has one
writer), so two concurrent automatic assignments never take the same turn.
"""

from __future__ import annotations

from crm_servicedesk.adapters.support_team_repository import SupportTeamRepository
from crm_servicedesk.adapters.ticket_repository import TicketRepository
from crm_servicedesk.domain import assignment as choice
from crm_servicedesk.domain import tickets as rules
from crm_servicedesk.domain.assignment import AssignmentStrategy
from crm_servicedesk.domain.tickets import Ticket
from crm_servicedesk.service import sla
from crm_servicedesk.service.ticket_events import emit_status_changed, emit_ticket_assigned, policy_of
from crm_shared.errors import FailedPrecondition, InvalidArgument


def default_strategy(assignee: str, team) -> AssignmentStrategy:
    """MANUAL when an assignee is named, else the team's strategy (MANUAL without a team)."""
    if assignee or team is None:
        return AssignmentStrategy.MANUAL
    return team.strategy


async def assign(
    uow,
    ticket: Ticket,
    *,
    team: str,
    assignee: str = "",
    strategy: AssignmentStrategy | None = None,
    cause: str = "",
    require_assignee: bool = False,
) -> Ticket:
    """Move `ticket` (as read in this unit of work) to `team`, to `assignee` or the strategy's pick.

    `strategy` None: MANUAL when `assignee` is given, else the team's own strategy. MANUAL
    without an assignee puts the ticket in the team's queue unassigned. An automatic strategy
    with nobody available also leaves it in the queue, unless `require_assignee` (AssignTicket
    asked for a pick: FAILED_PRECONDITION NO_AGENT_AVAILABLE). Saves the ticket, emits
    TicketAssigned (and TicketStatusChanged for NEW -> OPEN), and recomputes the SLA. Returns
    the ticket unchanged when nothing moves.
    """
    teams = SupportTeamRepository(uow.session)
    support_team = await teams.get(team, lock=True) if team else None
    chosen_strategy = strategy or default_strategy(assignee, support_team)
    if chosen_strategy is AssignmentStrategy.MANUAL:
        choice.check_manual_assignee(support_team, assignee)
        agent = assignee
    else:
        if assignee:
            raise InvalidArgument.for_field(
                "assignee", f"must be empty with the {chosen_strategy.value} strategy (it picks the agent)"
            )
        if support_team is None:
            raise FailedPrecondition(
                f"automatic assignment needs a support team; {team or 'no team'} is not one",
                reason="SUPPORT_TEAM_NOT_FOUND",
                metadata={"team": f"supportTeams/{team}" if team else ""},
            )
        open_tickets = (
            await TicketRepository(uow.session).open_counts([m.agent for m in support_team.members])
            if chosen_strategy is AssignmentStrategy.LEAST_LOADED
            else {}
        )
        agent = choice.choose(support_team, chosen_strategy, open_tickets) or ""
        if not agent and require_assignee:
            raise FailedPrecondition(
                f"no available member in {support_team.name}",
                reason="NO_AGENT_AVAILABLE",
                metadata={"team": support_team.name},
            )
        if agent:
            await teams.record_turn(support_team.id, agent)
    if agent == ticket.assignee and team == ticket.team:
        return ticket
    updated = rules.assigned(ticket, uow.now, team=team, assignee=agent)
    await TicketRepository(uow.session).save(updated, ticket.row_version)
    policy = policy_of(await sla.recompute(uow, updated, event="assigned", actor=uow.actor_subject))
    emit_ticket_assigned(
        uow,
        updated,
        previous_assignee=ticket.assignee,
        previous_team=ticket.team,
        strategy=chosen_strategy,
        cause=cause,
        sla_policy=policy,
    )
    if updated.status is not ticket.status:
        emit_status_changed(
            uow, updated, previous_status=ticket.status, actor=uow.actor_subject, sla_policy=policy
        )
    return updated
