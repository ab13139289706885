"""Pool rules as pure functions: exact deadlines (no day rounding), exemptions, warnings, claim checks."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from crm_customer.domain import follow_ups as fu
from crm_customer.domain.model import Customer, CustomerKind, CustomerStatus, Tier
from crm_customer.domain.pools import (
    ClaimContext,
    Pool,
    PoolRules,
    ReclaimRule,
    check_claim,
    put_in_pool,
    reclaim_deadline,
    take_from_pool,
    warning_time,
)
from crm_shared.errors import FailedPrecondition, InvalidArgument, ResourceExhausted

T = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a limit passing at 10:00 is due at 10:00
DAY = timedelta(days=1)


def owned(**kw) -> Customer:
    values = dict(
        id="c1",
        kind=CustomerKind.COMPANY,
        display_name="Acme",
        owner="alice",
        team="east",
        create_time=T - 30 * DAY,
        update_time=T,
        status=CustomerStatus.OWNED,
        pool_id="p1",
        assign_time=T,
        tier=Tier.B,
    )
    values.update(kw)
    return Customer(**values)


def pool(**rules) -> Pool:
    return Pool(
        id="p1", display_name="P", team="east", create_time=T, update_time=T, rules=PoolRules(**rules)
    )


RULES = PoolRules(reclaim={None: ReclaimRule(7, 30), Tier.A: ReclaimRule(15, 90)})


def test_deadline_is_the_earlier_clause_from_the_later_of_activity_and_assignment():
    assert reclaim_deadline(owned(), RULES).at == T + 7 * DAY
    # A follow-up before the assignment does not shorten the new owner's window.
    assert reclaim_deadline(owned(last_follow_up_time=T - 5 * DAY), RULES).at == T + 7 * DAY
    late = owned(last_follow_up_time=T + 28 * DAY + 3 * timedelta(hours=1))
    found = reclaim_deadline(late, RULES)
    assert (found.at, found.clause) == (T + 30 * DAY, "no_deal")
    assert reclaim_deadline(owned(tier=Tier.A), RULES).at == T + 15 * DAY
    assert reclaim_deadline(owned(tier=None), RULES).at == T + 7 * DAY  # the default rule


def test_locked_unowned_ungoverned_or_ruleless_customers_have_no_deadline():
    assert reclaim_deadline(owned(locked=True), RULES) is None
    assert reclaim_deadline(owned(status=CustomerStatus.IN_POOL), RULES) is None
    assert reclaim_deadline(owned(pool_id=""), RULES) is None
    assert reclaim_deadline(owned(), PoolRules()) is None


def test_exempt_with_deal_suspends_only_the_follow_up_clause():
    rules = replace(RULES, exempt_with_deal=True)
    dealt = owned(last_deal_time=T + DAY)
    found = reclaim_deadline(dealt, rules)
    assert (found.at, found.clause) == (T + 31 * DAY, "no_deal")
    assert (
        reclaim_deadline(dealt, PoolRules(reclaim={None: ReclaimRule(7, 0)}, exempt_with_deal=True)) is None
    )


def test_warning_comes_warn_days_before_or_at_once_when_already_inside_the_window():
    rules = PoolRules(warn_days_before=2)
    assert warning_time(T + 7 * DAY, rules, now=T) == T + 5 * DAY
    assert warning_time(T + DAY, rules, now=T) == T
    assert warning_time(T, rules, now=T) is None
    assert warning_time(T + 7 * DAY, PoolRules(), now=T) is None


def ctx(**kw) -> ClaimContext:
    values = dict(user="bob", team="east", now=T, customers_held=0, claims_last_24h=0, lost_at=None)
    values.update(kw)
    return ClaimContext(**values)


def test_claim_checks():
    p = pool(max_customers_per_user=3, max_claims_per_day=2, reclaim_cooldown_days=1)
    waiting = owned(status=CustomerStatus.IN_POOL, owner="")
    check_claim(p, waiting, ctx())
    with pytest.raises(FailedPrecondition, match="already has an owner"):
        check_claim(p, owned(), ctx())
    with pytest.raises(FailedPrecondition) as other_pool:
        check_claim(p, replace(waiting, pool_id="p2"), ctx())
    assert other_pool.value.reason == "CUSTOMER_NOT_IN_POOL"
    with pytest.raises(FailedPrecondition) as cooling:
        check_claim(p, waiting, ctx(lost_at=T - DAY + timedelta(seconds=1)))
    assert cooling.value.reason == "CLAIM_COOLDOWN"
    check_claim(p, waiting, ctx(lost_at=T - DAY))
    with pytest.raises(ResourceExhausted) as held:
        check_claim(p, waiting, ctx(customers_held=3))
    assert held.value.reason == "MAX_CUSTOMERS_REACHED"
    with pytest.raises(ResourceExhausted) as daily:
        check_claim(p, waiting, ctx(claims_last_24h=2))
    assert daily.value.reason == "DAILY_CLAIM_LIMIT_REACHED"


def test_moves_keep_the_former_owner():
    p = pool()
    released = put_in_pool(owned(), p, now=T + DAY)
    assert (released.status, released.owner, released.former_owner, released.team) == (
        CustomerStatus.IN_POOL,
        "",
        "alice",
        "east",
    )
    claimed = take_from_pool(released, owner="bob", team="west", now=T + 2 * DAY)
    assert (claimed.owner, claimed.former_owner, claimed.assign_time) == ("bob", "alice", T + 2 * DAY)
    assert claimed.version == released.version + 1


def test_follow_up_validation_and_effect_on_the_customer():
    data = fu.FollowUpInput(type=fu.FollowUpType.CALL, content=" hello ", next_follow_up_time=T + DAY)
    record = fu.new_follow_up(data, follow_up_id="f1", customer_id="c1", author="alice", now=T)
    assert (record.content, record.follow_up_time) == ("hello", T)
    customer, changed = fu.record_on_customer(owned(), record, now=T)
    assert changed == ["last_follow_up_time", "next_follow_up_time"]
    older = fu.new_follow_up(
        replace(data, follow_up_time=T - DAY, next_follow_up_time=None),
        follow_up_id="f2",
        customer_id="c1",
        author="a",
        now=T,
    )
    assert fu.record_on_customer(customer, older, now=T) == (customer, [])
    with pytest.raises(InvalidArgument):
        fu.new_follow_up(
            replace(data, next_follow_up_time=T), follow_up_id="f", customer_id="c", author="a", now=T
        )
    with pytest.raises(InvalidArgument):
        fu.new_follow_up(
            replace(data, follow_up_time=T + DAY), follow_up_id="f", customer_id="c", author="a", now=T
        )
