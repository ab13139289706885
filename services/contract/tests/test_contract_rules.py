"""The contract status machine and input rules, as pure functions (no database, no gRPC).

Random sequences of actions never reach a status outside the transition table,
terminal statuses stay terminal, a refused action changes nothing, and amounts
are never negative.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_contract.domain import contracts as rules
from crm_contract.domain.contracts import Contract, ContractInput, ContractStatus, LineItem
from crm_shared.errors import FailedPrecondition, InvalidArgument, Violations

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)

# What each action may lead to, written out independently of the implementation's table.
EXPECTED = {
    "submit": ({"draft", "rejected"}, "pending_approval"),
    "approve": ({"pending_approval"}, "approved"),
    "reject": ({"pending_approval"}, "rejected"),
    "withdraw": ({"pending_approval"}, "draft"),
    "sign": ({"approved"}, "active"),
    "terminate": ({"active"}, "terminated"),
    "expire": ({"active"}, "expired"),
}

ACTIONS = {
    "submit": rules.submit,
    "approve": rules.approve,
    "reject": rules.reject,
    "withdraw": rules.withdraw,
    "sign": rules.sign,
    "terminate": lambda c, now: rules.terminate(c, now, reason="breach"),
    "expire": rules.expire,
}


def draft(**changes) -> Contract:
    values = dict(
        id="00000000-0000-0000-0000-000000000001",
        number="C-000001",
        customer="customers/00000000-0000-0000-0000-00000000000c",
        currency="EUR",
        owner="bob",
        team="east",
        amount=120_000,
        start_date=date(2026, 4, 1),
        end_date=date(2027, 3, 31),
        create_time=NOW,
        update_time=NOW,
    )
    values.update(changes)
    return Contract(**values)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(sorted(ACTIONS)), max_size=25))
def test_no_sequence_of_actions_leaves_the_transition_table(actions):
    contract, now = draft(), NOW
    for action in actions:
        now += timedelta(minutes=1)
        allowed, target = EXPECTED[action]
        before = contract
        try:
            contract = ACTIONS[action](contract, now)
        except FailedPrecondition as refused:
            assert before.status.value not in allowed
            assert refused.reason.startswith("CONTRACT_NOT_")
            assert refused.metadata["status"] == before.status.value
            contract = before  # a refused action leaves the contract as it was
            continue
        assert before.status.value in allowed
        assert contract.status.value == target
        assert contract.row_version == before.row_version + 1
        assert before.status not in rules.TERMINAL_STATUSES, "a terminal status moved"
        assert contract.amount >= 0 and contract.outstanding >= 0


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(list(ContractStatus)))
def test_terminal_statuses_refuse_every_status_change(status):
    contract = draft(status=status)
    moves = [a for a in ACTIONS if _allowed(contract, a)]
    if status in rules.TERMINAL_STATUSES:
        assert moves == []
    else:
        assert moves, f"{status} has no way out"


def _allowed(contract, action) -> bool:
    try:
        ACTIONS[action](contract, NOW)
    except FailedPrecondition:
        return False
    return True


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 1_000), st.integers(0, 10**9)),
        min_size=0,
        max_size=6,
    ),
    st.one_of(st.none(), st.integers(-(10**6), 10**16)),
)
def test_amount_is_the_sum_of_line_items_and_never_negative(items, amount):
    line_items = [
        LineItem(description=f"item {i}", quantity=q, unit_price=p) for i, (q, p) in enumerate(items)
    ]
    data = ContractInput(customer="customers/x", currency="EUR", amount=amount, line_items=line_items)
    try:
        contract = rules.new_contract(data, contract_id="c", number="C-1", now=NOW, violations=Violations())
    except InvalidArgument as invalid:
        fields = {v.field for v in invalid.field_violations}
        total = sum(q * p for q, p in items)
        assert fields & {"contract.amount.amount_minor", "contract.amount"}
        assert (
            (items and amount is not None and amount != total)
            or (not items and (amount is None or amount < 0 or amount > rules.MAX_AMOUNT))
            or total > rules.MAX_AMOUNT
        )
        return
    assert contract.amount >= 0
    assert contract.amount == (sum(q * p for q, p in items) if items else amount)
    assert contract.status is ContractStatus.DRAFT and contract.received == 0


def test_submit_needs_dates_and_a_positive_amount():
    with pytest.raises(FailedPrecondition) as refused:
        rules.submit(draft(start_date=None, amount=0), NOW)
    assert refused.value.reason == "CONTRACT_INCOMPLETE"
    assert refused.value.metadata["missing"] == "start_date,a positive amount"


def test_sign_defaults_to_today_in_utc_and_keeps_signers_unless_given():
    approved = draft(status=ContractStatus.APPROVED, company_signer="carol")
    late_evening = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    signed = rules.sign(approved, late_evening)
    assert (signed.signed_date, signed.company_signer) == (date(2026, 3, 1), "carol")
    assert rules.sign(approved, NOW, company_signer="dave").company_signer == "dave"


def test_rejected_contract_edited_back_into_a_draft():
    from crm_shared.access import Scope, ScopeGrant

    rejected = draft(status=ContractStatus.REJECTED)
    grant = ScopeGrant(scope=Scope.OWN, subject="bob", team="east")
    updated, changed = rules.update_contract(
        rejected,
        ContractInput(title="Better"),
        frozenset({"title"}),
        now=NOW,
        grant=grant,
        violations=Violations(),
    )
    assert (updated.status, changed) == (ContractStatus.DRAFT, ["title"])
    with pytest.raises(FailedPrecondition) as refused:
        rules.update_contract(
            draft(status=ContractStatus.ACTIVE),
            ContractInput(title="x"),
            frozenset({"title"}),
            now=NOW,
            grant=grant,
            violations=Violations(),
        )
    assert refused.value.reason == "CONTRACT_NOT_DRAFT_OR_REJECTED"


def test_renewal_defaults_follow_the_old_term_and_allow_one_renewal():
    active = draft(status=ContractStatus.ACTIVE)
    terms = rules.renewal_terms(active, start_date=None, end_date=None, amount=None)
    assert (terms.start_date, terms.end_date, terms.amount) == (date(2027, 4, 1), date(2028, 3, 31), 120_000)
    renewed = rules.mark_renewed(active, NOW, renewal_id="r")
    assert renewed.status is ContractStatus.ACTIVE and renewed.renewed_by == "r"
    with pytest.raises(FailedPrecondition) as refused:
        rules.check_renewable(renewed)
    assert refused.value.reason == "CONTRACT_ALREADY_RENEWED"


def test_timer_moments_are_utc_midnights_around_the_end_date():
    contract = draft(end_date=date(2026, 3, 31), renewal_notice_days=30)
    assert rules.renewal_due_at(contract) == datetime(2026, 3, 1, tzinfo=UTC)
    assert rules.expires_at(contract) == datetime(2026, 4, 1, tzinfo=UTC)
    assert rules.days_left(contract, datetime(2026, 3, 31, 23, 59, tzinfo=UTC)) == 0


@pytest.mark.parametrize(
    ("old_start", "old_end", "new_start", "new_end"),
    [
        (date(2026, 4, 1), date(2027, 3, 31), date(2027, 4, 1), date(2028, 3, 31)),  # a year over a leap day
        (date(2026, 1, 1), date(2026, 1, 31), date(2026, 2, 1), date(2026, 2, 28)),  # one month
        (date(2026, 1, 1), date(2026, 1, 10), date(2026, 1, 11), date(2026, 1, 20)),  # ten days
        (date(2026, 1, 15), date(2026, 2, 14), date(2026, 2, 15), date(2026, 3, 14)),  # a month mid-month
    ],
)
def test_a_renewal_lasts_as_long_in_calendar_terms(old_start, old_end, new_start, new_end):
    assert rules.same_term_end(old_start, old_end, new_start) == new_end


@settings(max_examples=100, deadline=None)
@given(
    st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31)),
    st.integers(0, 2000),
    st.integers(1, 400),
)
def test_a_renewal_term_is_never_shorter_than_a_day_and_differs_by_at_most_month_lengths(start, length, gap):
    old_end = start + timedelta(days=length)
    new_start = old_end + timedelta(days=gap)
    new_end = rules.same_term_end(start, old_end, new_start)
    assert new_end >= new_start
    # Month lengths differ by up to 3 days (28 vs 31), plus one leap day more or less.
    assert abs((new_end - new_start).days - length) <= 4
