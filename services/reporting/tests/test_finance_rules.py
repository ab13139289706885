"""Pure finance rules: aging bucket edges, buckets adding up, collection rate, spreading money
received before a plan existed."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_reporting.domain.finance import (
    AgingBucket,
    InstallmentDue,
    age,
    aging_bucket,
    collection_rate_bp,
    day_bounds,
    days_past_due,
    spread_unallocated,
)

AS_OF = date(2026, 6, 30)


@pytest.mark.parametrize(
    ("days_late", "bucket"),
    [
        (-10, AgingBucket.CURRENT),
        (0, AgingBucket.CURRENT),
        (1, AgingBucket.DAYS_1_30),
        (30, AgingBucket.DAYS_1_30),
        (31, AgingBucket.DAYS_31_60),
        (60, AgingBucket.DAYS_31_60),
        (61, AgingBucket.DAYS_61_90),
        (90, AgingBucket.DAYS_61_90),
        (91, AgingBucket.DAYS_OVER_90),
        (4000, AgingBucket.DAYS_OVER_90),
    ],
)
def test_bucket_edges_by_whole_days_past_due(days_late, bucket):
    due = AS_OF - timedelta(days=days_late)
    assert aging_bucket(due, AS_OF) is bucket
    assert days_past_due(due, AS_OF) == max(0, days_late)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(-200, 400), st.integers(-1000, 10**9)), max_size=30))
def test_buckets_add_up_to_total_outstanding(items):
    dated = [(AS_OF - timedelta(days=d), amount) for d, amount in items]
    aging = age(dated, AS_OF)
    assert aging.total == sum(amount for _, amount in dated if amount > 0)
    assert all(v >= 0 for v in aging.buckets.values())
    overdue = sum(amount for d, amount in items if amount > 0 and d > 0)
    assert aging.total - aging.buckets[AgingBucket.CURRENT] == overdue


def test_collection_rate_in_basis_points():
    assert collection_rate_bp(0, 0) == 0
    assert collection_rate_bp(5, 0) == 0
    assert collection_rate_bp(1, 3) == 3333
    assert collection_rate_bp(2, 3) == 6666
    assert collection_rate_bp(300, 300) == 10_000
    assert collection_rate_bp(400, 300) == 10_000


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 300), st.integers(1, 10_000), st.integers(0, 10_000)), max_size=8),
    st.integers(0, 50_000),
)
def test_unallocated_money_fills_oldest_due_first_and_never_overpays(rows, loose):
    plan = [
        InstallmentDue(key=f"i{n}", due_date=AS_OF + timedelta(days=d), amount=a, paid=min(p, a))
        for n, (d, a, p) in enumerate(rows)
    ]
    paid = spread_unallocated(plan, loose)
    before = sum(i.paid for i in plan)
    assert sum(paid.values()) == min(before + loose, sum(i.amount for i in plan))
    assert all(i.paid <= paid[i.key] <= i.amount for i in plan)
    # Oldest first: a later installment only gets money once every earlier one is full.
    ordered = sorted(plan, key=lambda i: (i.due_date, i.key))
    for earlier, later in itertools.pairwise(ordered):
        if paid[later.key] > later.paid:
            assert paid[earlier.key] == earlier.amount


def test_day_bounds_of_a_period():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = datetime(2026, 2, 1, tzinfo=UTC)
    assert day_bounds(start, end) == (date(2026, 1, 1), date(2026, 2, 1))
    assert day_bounds(start + timedelta(hours=1), end + timedelta(seconds=1)) == (
        date(2026, 1, 2),
        date(2026, 2, 2),
    )
    assert day_bounds(None, None) == (None, None)
