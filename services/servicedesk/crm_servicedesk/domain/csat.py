"""CSAT surveys: one per ticket, opened by a resolution and answered at most once.

Pure rules: each transition takes a survey (or nothing yet) and returns the new one,
or raises FailedPrecondition with the reason a caller can act on. The survey keeps
the agent and team that resolved the ticket, so a later reassignment does not move
the credit (or the blame) for the answer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime

from crm_shared.errors import FailedPrecondition, InvalidArgument

MIN_SCORE = 1
MAX_SCORE = 5
MAX_COMMENT_LENGTH = 4000
# First-contact resolution: the customer got the answer in (at most) one public agent reply.
FIRST_CONTACT_MAX_PUBLIC_REPLIES = 1


class CsatState(enum.StrEnum):
    NOT_OPEN = "not_open"  # the ticket is not resolved (yet, or again)
    OPEN = "open"
    ANSWERED = "answered"


@dataclass(frozen=True)
class CsatSurvey:
    ticket_id: str
    customer: str
    state: CsatState
    score: int
    comment: str
    first_contact_resolution: bool
    assignee: str
    team: str
    open_time: datetime | None
    answer_time: datetime | None
    answered_by: str
    update_time: datetime
    row_version: int

    @property
    def name(self) -> str:
        return survey_name(self.ticket_id)

    @property
    def ticket(self) -> str:
        return f"tickets/{self.ticket_id}"


def survey_name(ticket_id: str) -> str:
    return f"tickets/{ticket_id}/csatSurvey"


def not_open_survey(ticket_id: str, customer: str, now: datetime) -> CsatSurvey:
    """What GetCsatSurvey shows for a ticket never resolved: nothing stored, nothing to answer."""
    return CsatSurvey(
        ticket_id=ticket_id,
        customer=customer,
        state=CsatState.NOT_OPEN,
        score=0,
        comment="",
        first_contact_resolution=False,
        assignee="",
        team="",
        open_time=None,
        answer_time=None,
        answered_by="",
        update_time=now,
        row_version=0,
    )


def is_first_contact_resolution(*, public_agent_replies: int, reopen_count: int) -> bool:
    return public_agent_replies <= FIRST_CONTACT_MAX_PUBLIC_REPLIES and reopen_count == 0


def open_on_resolution(
    survey: CsatSurvey | None,
    *,
    ticket_id: str,
    customer: str,
    assignee: str,
    team: str,
    public_agent_replies: int,
    reopen_count: int,
    now: datetime,
) -> CsatSurvey | None:
    """The survey after the ticket is resolved; None when nothing changes (already answered).

    An answered survey stays as it was: the customer is asked once per ticket, however often
    the ticket is reopened and resolved again.
    """
    if survey is not None and survey.state is CsatState.ANSWERED:
        return None
    fcr = is_first_contact_resolution(public_agent_replies=public_agent_replies, reopen_count=reopen_count)
    base = survey or not_open_survey(ticket_id, customer, now)
    return replace(
        base,
        customer=customer,
        state=CsatState.OPEN,
        first_contact_resolution=fcr,
        assignee=assignee,
        team=team,
        open_time=now,
        update_time=now,
        row_version=base.row_version + 1,
    )


def close_on_reopen(survey: CsatSurvey | None, *, now: datetime) -> CsatSurvey | None:
    """The survey after the ticket is reopened; None when nothing changes.

    An unanswered survey closes (it asks about a resolution that did not hold); an answered
    one is kept.
    """
    if survey is None or survey.state is not CsatState.OPEN:
        return None
    return replace(survey, state=CsatState.NOT_OPEN, update_time=now, row_version=survey.row_version + 1)


def validate_answer(score: int, comment: str) -> None:
    """Also enforced by the proto's validation; repeated here so the rule holds for every caller."""
    if not MIN_SCORE <= score <= MAX_SCORE:
        raise InvalidArgument.for_field("score", f"must be between {MIN_SCORE} and {MAX_SCORE}")
    if len(comment) > MAX_COMMENT_LENGTH:
        raise InvalidArgument.for_field("comment", f"must be at most {MAX_COMMENT_LENGTH} characters")


def answer(survey: CsatSurvey, *, score: int, comment: str, answered_by: str, now: datetime) -> CsatSurvey:
    """Record the one answer of an OPEN survey."""
    validate_answer(score, comment)
    if survey.state is CsatState.ANSWERED:
        raise FailedPrecondition(
            f"{survey.name} is answered already; a survey takes one answer",
            reason="CSAT_ALREADY_ANSWERED",
            metadata={"resource": survey.name},
        )
    if survey.state is not CsatState.OPEN:
        raise FailedPrecondition(
            f"{survey.name} is not open: the ticket is not resolved",
            reason="CSAT_NOT_OPEN",
            metadata={"resource": survey.name},
        )
    return replace(
        survey,
        state=CsatState.ANSWERED,
        score=score,
        comment=comment,
        answered_by=answered_by,
        answer_time=now,
        update_time=now,
        row_version=survey.row_version + 1,
    )
