"""Lead rules without I/O: the status state machine (property-based) and round-robin rotation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_sales.domain import leads as rules
from crm_sales.domain.leads import AssignmentRule, Lead, LeadAction, LeadInput, LeadStatus, SourceChannel
from crm_shared.access import Scope, ScopeGrant
from crm_shared.errors import FailedPrecondition, InvalidArgument, PermissionDenied

NOW = datetime(2026, 11, 22, tzinfo=UTC)
TERMINAL = {LeadStatus.CONVERTED, LeadStatus.DISQUALIFIED}


def lead(status: LeadStatus = LeadStatus.NEW, owner: str = "") -> Lead:
    return Lead(
        id="1", display_name="x", status=status, owner=owner, team="east", create_time=NOW, update_time=NOW
    )


def apply(current: Lead, action: LeadAction) -> Lead:
    if action is LeadAction.ASSIGN:
        return rules.assign(current, owner="bob", team="east", now=NOW)
    if action is LeadAction.START_WORKING:
        return rules.start_working(current, actor="bob", now=NOW)
    if action is LeadAction.RECYCLE:
        return rules.recycle(current, now=NOW)
    if action is LeadAction.DISQUALIFY:
        return rules.disqualify(current, reason="spam", now=NOW)
    return rules.convert(
        current,
        customer="customers/c",
        contact="customers/c/contacts/k",
        opportunity="",
        owner="bob",
        now=NOW,
    )


@given(st.lists(st.sampled_from(list(LeadAction)), max_size=12))
def test_any_sequence_of_actions_follows_the_state_machine(actions):
    current = lead()
    for action in actions:
        before = current
        try:
            current = apply(current, action)
        except FailedPrecondition as refused:
            assert before.status not in rules.allowed_from(action)
            assert refused.reason == "ILLEGAL_LEAD_TRANSITION"
            assert refused.metadata["status"] == before.status.value.upper()
            continue
        assert before.status in rules.allowed_from(action)
        assert before.status not in TERMINAL  # nothing leaves a terminal status
        assert current.version == before.version + 1
        assert (
            current.status
            is {
                LeadAction.ASSIGN: LeadStatus.ASSIGNED,
                LeadAction.START_WORKING: LeadStatus.WORKING,
                LeadAction.RECYCLE: LeadStatus.RECYCLED,
                LeadAction.DISQUALIFY: LeadStatus.DISQUALIFIED,
                LeadAction.CONVERT: LeadStatus.CONVERTED,
            }[action]
        )
        if current.status is LeadStatus.CONVERTED:
            assert current.converted_customer and current.owner


def test_disqualify_needs_a_reason():
    with pytest.raises(InvalidArgument) as missing:
        rules.disqualify(lead(LeadStatus.WORKING, "bob"), reason="  ", now=NOW)
    assert [v.field for v in missing.value.field_violations] == ["reason"]


@given(st.integers(min_value=1, max_value=7), st.integers(min_value=0, max_value=50), st.integers(0, 20))
def test_round_robin_deals_in_turn_from_the_stored_position(size, start, count):
    rule = AssignmentRule(
        id="r",
        display_name="r",
        team="east",
        members=[f"m{i}" for i in range(size)],
        source_channels=[],
        next_index=start,
        create_time=NOW,
        update_time=NOW,
    )
    assignees, next_index = rules.round_robin(rule, count)
    assert assignees == [rule.members[(start + i) % size] for i in range(count)]
    assert next_index == (start + count) % size
    # Dealing in two batches is the same as dealing in one.
    first, middle = rules.round_robin(rule, count // 2)
    rule.next_index = middle
    second, end = rules.round_robin(rule, count - count // 2)
    assert first + second == assignees and end == next_index


def test_new_lead_normalizes_and_places_it_in_the_callers_scope():
    rep = ScopeGrant(Scope.OWN, "bob", "east")
    created = rules.new_lead(
        LeadInput(
            display_name=" Li ",
            email_addresses=["Li@Example.COM", "li@example.com"],
            phone_numbers=["138 0013 8000"],
        ),
        lead_id="1",
        now=NOW,
        grant=rep,
        phone_region="CN",
    )
    assert (created.owner, created.team, created.status) == ("bob", "east", LeadStatus.ASSIGNED)
    assert created.emails == ["li@example.com"] and created.phones == ["+8613800138000"]
    with pytest.raises(PermissionDenied):
        rules.new_lead(
            LeadInput(display_name="x", owner="carol"), lead_id="2", now=NOW, grant=rep, phone_region="CN"
        )
    marketing = ScopeGrant(Scope.ALL, "max", "mkt")
    unowned = rules.new_lead(
        LeadInput(display_name="x"), lead_id="3", now=NOW, grant=marketing, phone_region="CN"
    )
    assert (unowned.owner, unowned.status) == ("", LeadStatus.NEW)
    with pytest.raises(InvalidArgument) as bad:
        rules.new_lead(
            LeadInput(display_name="", source_channel=SourceChannel.THIRD_PARTY, email_addresses=["x"]),
            lead_id="4",
            now=NOW,
            grant=marketing,
            phone_region="CN",
        )
    assert {v.field for v in bad.value.field_violations} == {
        "lead.display_name",
        "lead.email_addresses[0]",
        "lead.source_platform",
    }
