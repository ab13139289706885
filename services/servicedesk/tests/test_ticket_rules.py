"""The ticket status machine and input rules (pure domain, property-based).

Any sequence of actions either applies a legal move from TRANSITIONS or is refused with
FAILED_PRECONDITION leaving the ticket as it was; the times and counters a report relies on
(first response once, resolve/close times, reopen count) stay consistent with the status.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_servicedesk.domain import tickets as rules
from crm_servicedesk.domain.tickets import (
    CustomerFacts,
    SnapshotState,
    TicketInput,
    TicketPriority,
    TicketStatus,
)
from crm_shared.errors import FailedPrecondition, InvalidArgument, Violations

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

ACTIONS = {
    "assign": lambda t, now: rules.assigned(t, now, team="east", assignee="sam"),
    "agent_reply": rules.agent_replied,
    "customer_reply": rules.customer_replied,
    "hold": lambda t, now: rules.hold(t, now, reason="waiting"),
    "resume": rules.resume,
    "resolve": lambda t, now: rules.resolve(t, now, resolution="fixed"),
    "close": rules.close,
    "reopen": lambda t, now: rules.reopen(t, now, reason="again"),
}
# Which TRANSITIONS entry guards each action above.
GUARD = {
    "assign": "assign",
    "agent_reply": "comment",
    "customer_reply": "comment",
    "hold": "hold",
    "resume": "resume",
    "resolve": "resolve",
    "close": "close",
    "reopen": "reopen",
}


def fresh(**overrides):
    data = TicketInput(subject="Printer", **overrides)
    return rules.new_ticket(
        data, ticket_id="t1", number="T-000001", requester="cust", now=START, violations=Violations()
    )


@settings(max_examples=200)
@given(st.lists(st.sampled_from(sorted(ACTIONS)), max_size=25))
def test_no_sequence_of_actions_reaches_an_illegal_state(actions):
    ticket, now = fresh(), START
    first_response = None
    for action in actions:
        now += timedelta(minutes=7)
        before = ticket
        allowed_from, target = rules.TRANSITIONS[GUARD[action]]
        try:
            ticket = ACTIONS[action](ticket, now)
        except FailedPrecondition as refused:
            assert before.status not in allowed_from
            assert refused.reason.startswith("TICKET_NOT_")
            ticket = before
            continue
        assert before.status in allowed_from
        if target is not None:
            assert ticket.status is target
        assert ticket.row_version == before.row_version + 1
        if action == "agent_reply":
            first_response = first_response or now
        # Invariants a report relies on.
        assert ticket.first_response_time == first_response
        assert (ticket.resolve_time is not None) == (
            ticket.status in (TicketStatus.RESOLVED, TicketStatus.CLOSED)
        )
        assert (ticket.close_time is not None) == (ticket.status is TicketStatus.CLOSED)
    assert ticket.status in set(TicketStatus)


@settings(max_examples=100)
@given(st.lists(st.sampled_from(sorted(ACTIONS)), max_size=20))
def test_reopen_count_counts_successful_reopens(actions):
    ticket, reopened = fresh(), 0
    for action in actions:
        try:
            ticket = ACTIONS[action](ticket, START)
        except FailedPrecondition:
            continue
        reopened += action == "reopen"
    assert ticket.reopen_count == reopened


def test_a_customer_reply_resumes_a_pending_ticket_and_an_agent_reply_opens_a_new_one():
    ticket = rules.hold(fresh(), START, reason="need logs")
    assert rules.customer_replied(ticket, START).status is TicketStatus.OPEN
    assert rules.agent_replied(fresh(), START).status is TicketStatus.OPEN
    # An agent's reply while on hold keeps it on hold (still waiting on the customer).
    assert rules.agent_replied(ticket, START).status is TicketStatus.PENDING


def test_input_rules_name_the_bad_fields():
    with pytest.raises(InvalidArgument) as caught:
        rules.new_ticket(
            TicketInput(subject=" ", tags=["ok", ""], customer="", contact="customers/a/contacts/b"),
            ticket_id="t",
            number="T-1",
            requester="r",
            now=START,
            violations=Violations(),
        )
    fields = {v.field for v in caught.value.field_violations}
    assert fields == {"ticket.subject", "ticket.tags[1]", "ticket.contact"}


def test_priority_raises_one_step_and_urgent_stays_urgent():
    assert [p.raised() for p in TicketPriority] == [
        TicketPriority.NORMAL,
        TicketPriority.HIGH,
        TicketPriority.URGENT,
        TicketPriority.URGENT,
    ]


def test_changing_the_customer_forgets_the_old_snapshot_and_moving_rehomes_the_contact():
    customer = "customers/00000000-0000-0000-0000-000000000001"
    survivor = "customers/00000000-0000-0000-0000-000000000002"
    ticket = fresh(customer=customer, contact=f"{customer}/contacts/c1")
    assert ticket.snapshot_state is SnapshotState.PENDING
    fetched = rules.snapshot_fetched(ticket, CustomerFacts("Acme", "A", "active", "olga", "east"), START)
    assert (fetched.snapshot_state, fetched.customer_tier) == (SnapshotState.FETCHED, "A")
    moved = rules.with_customer_changed(rules.moved_to_customer(fetched, survivor, START))
    assert (moved.customer, moved.contact) == (survivor, f"{survivor}/contacts/c1")
    assert (moved.snapshot_state, moved.customer_name) == (SnapshotState.PENDING, "")
    erased = rules.snapshot_not_found(fetched, START)
    assert (erased.snapshot_state, erased.customer_name, erased.customer_tier) == (
        SnapshotState.NOT_FOUND,
        "",
        "",
    )
