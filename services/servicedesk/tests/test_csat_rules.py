"""CSAT survey rules as pure functions (no database, no gRPC).

A random life of a ticket (resolve, reopen, answer attempts) never yields a second answer,
never loses an answer, and an answer is only ever accepted while the ticket is resolved.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_servicedesk.domain import csat as rules
from crm_servicedesk.domain.csat import CsatState
from crm_shared.errors import FailedPrecondition, InvalidArgument

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TICKET = "0190a0b0-0000-7000-8000-000000000001"


def resolved(survey=None, *, replies=1, reopens=0, assignee="sam", team="east", now=NOW):
    return rules.open_on_resolution(
        survey,
        ticket_id=TICKET,
        customer="customers/c1",
        assignee=assignee,
        team=team,
        public_agent_replies=replies,
        reopen_count=reopens,
        now=now,
    )


@pytest.mark.parametrize(
    ("replies", "reopens", "fcr"),
    [(0, 0, True), (1, 0, True), (2, 0, False), (1, 1, False), (0, 2, False)],
)
def test_first_contact_resolution_needs_at_most_one_reply_and_no_reopen(replies, reopens, fcr):
    survey = resolved(replies=replies, reopens=reopens)
    assert survey.state is CsatState.OPEN
    assert survey.first_contact_resolution is fcr


def test_resolution_opens_the_survey_for_the_resolving_agent_and_team():
    survey = resolved(assignee="sam", team="east")
    assert (survey.assignee, survey.team, survey.open_time, survey.row_version) == ("sam", "east", NOW, 1)
    assert survey.name == f"tickets/{TICKET}/csatSurvey"


def test_reopen_closes_an_unanswered_survey_and_the_next_resolution_reopens_it():
    closed = rules.close_on_reopen(resolved(), now=NOW + timedelta(hours=1))
    assert closed.state is CsatState.NOT_OPEN
    with pytest.raises(FailedPrecondition) as refused:
        rules.answer(closed, score=4, comment="", answered_by="portal", now=NOW)
    assert refused.value.reason == "CSAT_NOT_OPEN"

    again = resolved(closed, replies=3, reopens=1, assignee="ann", team="west", now=NOW + timedelta(hours=2))
    assert again.state is CsatState.OPEN
    assert (again.assignee, again.team, again.first_contact_resolution) == ("ann", "west", False)
    assert again.open_time == NOW + timedelta(hours=2)


def test_an_answer_survives_reopen_and_resolution():
    answered = rules.answer(resolved(), score=5, comment="quick!", answered_by="portal", now=NOW)
    assert rules.close_on_reopen(answered, now=NOW) is None
    assert resolved(answered, reopens=1) is None
    with pytest.raises(FailedPrecondition) as refused:
        rules.answer(answered, score=1, comment="changed my mind", answered_by="portal", now=NOW)
    assert refused.value.reason == "CSAT_ALREADY_ANSWERED"


def test_reopen_of_a_ticket_without_a_survey_changes_nothing():
    assert rules.close_on_reopen(None, now=NOW) is None


@pytest.mark.parametrize(
    ("score", "comment", "field"), [(0, "", "score"), (6, "", "score"), (3, "x" * 4001, "comment")]
)
def test_out_of_range_answers_are_invalid(score, comment, field):
    with pytest.raises(InvalidArgument) as refused:
        rules.answer(resolved(), score=score, comment=comment, answered_by="portal", now=NOW)
    assert refused.value.field_violations[0].field == field


_STEPS = st.lists(
    st.one_of(
        st.just(("resolve",)),
        st.just(("reopen",)),
        st.tuples(st.just("answer"), st.integers(min_value=1, max_value=5)),
    ),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(_STEPS)
def test_any_ticket_life_gets_at_most_one_answer_and_only_while_resolved(steps):
    survey, ticket_resolved, answers = None, False, []
    for index, step in enumerate(steps):
        now = NOW + timedelta(minutes=index)
        if step[0] == "resolve" and not ticket_resolved:
            survey = resolved(survey, reopens=index) or survey
            ticket_resolved = True
        elif step[0] == "reopen" and ticket_resolved:
            survey = rules.close_on_reopen(survey, now=now) or survey
            ticket_resolved = False
        elif step[0] == "answer":
            may_answer = survey is not None and ticket_resolved and not answers
            if not may_answer:
                with pytest.raises(FailedPrecondition):
                    rules.answer(
                        survey or rules.not_open_survey(TICKET, "customers/c1", now),
                        score=step[1],
                        comment="",
                        answered_by="portal",
                        now=now,
                    )
                continue
            survey = rules.answer(survey, score=step[1], comment="", answered_by="portal", now=now)
            answers.append(step[1])
        if answers:  # the one answer is never lost nor changed
            assert survey.state is CsatState.ANSWERED and survey.score == answers[0]
        elif survey is not None:
            assert survey.state is (CsatState.OPEN if ticket_resolved else CsatState.NOT_OPEN)
    assert len(answers) <= 1
