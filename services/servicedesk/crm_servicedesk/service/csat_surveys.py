"""Use cases of the CSAT API: read a ticket's survey, answer it once, list answered surveys.

A survey is visible exactly when its ticket is (the csat_surveys grant applied to the ticket:
a customer_portal caller sees the tickets it requested, an agent its team's queue), so a
survey outside the caller's scope is NOT_FOUND like the ticket itself.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from crm.servicedesk.v1 import events_pb2
from crm_servicedesk.adapters.csat_repository import CSAT_FILTERS, CsatRepository, sort_values
from crm_servicedesk.adapters.ticket_repository import TicketRepository, ticket_scope
from crm_servicedesk.domain import csat as rules
from crm_servicedesk.domain.csat import CsatSurvey
from crm_servicedesk.domain.tickets import Ticket
from crm_servicedesk.service.ticket_events import timestamp
from crm_shared.aip.paging import Page, parse_list_request
from crm_shared.errors import NotFound
from crm_shared.principal import Principal

CSAT_SURVEYS = "csat_surveys"
SUBJECT_SUBMITTED = "crm.servicedesk.csat.submitted"


def survey_not_found(ticket_id: str) -> NotFound:
    # The same answer whether the ticket does not exist or is outside the caller's scope.
    name = rules.survey_name(ticket_id)
    return NotFound(f"{name} not found", reason="CSAT_SURVEY_NOT_FOUND", metadata={"resource": name})


async def _visible_ticket(
    session: AsyncSession, deps, principal: Principal, ticket_id: str, action: str
) -> Ticket:
    grant = deps.policy.grant(principal, CSAT_SURVEYS, action)
    ticket = await TicketRepository(session).get(ticket_id, grant)
    if ticket is None:
        raise survey_not_found(ticket_id)
    return ticket


async def get_survey(session: AsyncSession, deps, principal: Principal, ticket_id: str) -> CsatSurvey:
    """The survey, or a NOT_OPEN one for a ticket never resolved."""
    ticket = await _visible_ticket(session, deps, principal, ticket_id, "read")
    survey = await CsatRepository(session).get(ticket_id)
    return survey or rules.not_open_survey(ticket_id, ticket.customer, ticket.update_time)


async def submit_response(
    uow, deps, principal: Principal, ticket_id: str, *, score: int, comment: str
) -> CsatSurvey:
    """Answer the survey once: CSAT_NOT_OPEN before resolution, CSAT_ALREADY_ANSWERED after an answer."""
    rules.validate_answer(score, comment)
    ticket = await _visible_ticket(uow.session, deps, principal, ticket_id, "submit")
    repo = CsatRepository(uow.session)
    current = await repo.get(ticket_id, lock=True)
    if current is None:
        current = rules.not_open_survey(ticket_id, ticket.customer, uow.now)
    survey = rules.answer(current, score=score, comment=comment, answered_by=principal.subject, now=uow.now)
    await repo.save(survey)
    uow.emit(
        SUBJECT_SUBMITTED,
        events_pb2.CsatSubmitted(
            ticket=survey.ticket,
            customer=survey.customer,
            score=survey.score,
            first_contact_resolution=survey.first_contact_resolution,
            assignee=survey.assignee,
            team=survey.team,
            answer_time=timestamp(survey.answer_time),
        ),
        resource=survey.ticket,
    )
    uow.audit("csat_submitted", survey.name, ["score", "comment"] if comment else ["score"])
    return survey


async def list_surveys(
    session: AsyncSession, deps, principal: Principal, *, page_size: int, page_token: str, filter_text: str
) -> Page:
    """Answered surveys of the tickets in the caller's scope, newest answer first."""
    grant = deps.policy.grant(principal, CSAT_SURVEYS, "read")
    request = parse_list_request(
        deps.page_tokens,
        collection=CSAT_SURVEYS,
        caller=principal.subject,
        page_size=page_size,
        page_token=page_token,
        filter_text=filter_text,
        filters=CSAT_FILTERS,
        orderable=("answer_time",),
        default_order="answer_time desc",
    )
    rows = await CsatRepository(session).list_answered(
        ticket_scope(grant), where=request.where, after=request.after, limit=request.limit + 1
    )
    return request.page(rows, deps.page_tokens, key=sort_values)
