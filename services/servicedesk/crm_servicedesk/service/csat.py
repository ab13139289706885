"""The ticket's side of CSAT: resolving opens the survey, reopening closes an unanswered one.

Called by the ticket use cases inside their unit of work, after the ticket is saved, so the
survey always agrees with the ticket's status. CustomerMerged/CustomerErased handlers call
the customer hooks below in the consumer's unit of work.
"""

from __future__ import annotations

from crm_servicedesk.adapters.csat_repository import CsatRepository
from crm_servicedesk.domain import csat as rules
from crm_servicedesk.domain.tickets import Ticket


async def on_resolved(uow, ticket: Ticket) -> None:
    """Open (or re-open) the ticket's survey, crediting the agent and team who resolved it."""
    repo = CsatRepository(uow.session)
    survey = rules.open_on_resolution(
        await repo.get(ticket.id, lock=True),
        ticket_id=ticket.id,
        customer=ticket.customer,
        assignee=ticket.assignee,
        team=ticket.team,
        public_agent_replies=ticket.public_agent_replies,
        reopen_count=ticket.reopen_count,
        now=uow.now,
    )
    if survey is not None:
        await repo.save(survey)


async def on_reopened(uow, ticket: Ticket) -> None:
    """Close an unanswered survey until the next resolution; an answered one is kept."""
    repo = CsatRepository(uow.session)
    survey = rules.close_on_reopen(await repo.get(ticket.id, lock=True), now=uow.now)
    if survey is not None:
        await repo.save(survey)


async def on_customer_merged(uow, *, merged: str, survivor: str) -> None:
    """The surveys of a merged-away customer ("customers/{id}") now belong to the survivor."""
    await CsatRepository(uow.session).move_customer(merged, survivor)


async def on_customer_erased(uow, customer: str) -> None:
    """Erasure: the customer's free-text comments go; scores stay for the team's statistics."""
    await CsatRepository(uow.session).erase_comments(customer)
