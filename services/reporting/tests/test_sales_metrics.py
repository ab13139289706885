"""Pure sales metrics: basis-point rates, money division, funnel order, forecast buckets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from crm_reporting.domain import sales_metrics as m


def half_up(value: Fraction) -> int:
    return int(value + Fraction(1, 2)) if value >= 0 else -int(-value + Fraction(1, 2))


@settings(max_examples=100)
@given(st.integers(0, 10**9), st.integers(0, 10**9))
def test_rate_is_the_exact_ratio_rounded_half_up(numerator, denominator):
    expected = 0 if denominator == 0 or numerator == 0 else half_up(Fraction(numerator * 10_000, denominator))
    assert m.rate_bp(numerator, denominator) == expected


@settings(max_examples=100)
@given(st.integers(-(10**12), 10**12), st.integers(0, 10**6))
def test_money_division_rounds_half_away_from_zero(amount, count):
    expected = 0 if count == 0 else half_up(Fraction(amount, count))
    assert m.divide_money(amount, count) == expected


def test_win_rate_attainment_and_conversions():
    assert m.win_rate_bp(3, 1) == 7500
    assert m.win_rate_bp(0, 0) == 0
    assert m.attainment_bp(60_000, 40_000) == 6000
    assert m.conversion_rates_bp([10, 5, 2]) == [5000, 4000, 0]
    assert m.rate_bp(2, 3) == 6667 and m.rate_bp(1, 3) == 3333


def test_days_month_and_seconds():
    start = datetime(2026, 3, 31, 23, 0, tzinfo=UTC)
    assert m.seconds_between(start, start + timedelta(days=2, hours=12)) == 216_000
    assert m.days(216_000) == 2.5 and m.days(None) == 0.0
    assert m.month_key(start) == "2026-03"
    assert m.month_key(start + timedelta(hours=1)) == "2026-04"
    assert m.seconds_between(None, start) is None


def test_funnel_order_is_by_pipeline_then_first_entry():
    t = datetime(2026, 1, 1, tzinfo=UTC)
    first = {
        "pipelines/b/stages/x": t,
        "pipelines/a/stages/won": t + timedelta(days=9),
        "pipelines/a/stages/qualify": t + timedelta(days=1),
        "pipelines/a/stages/propose": t + timedelta(days=3),
    }
    pipeline_of = {s: s.split("/stages/")[0] for s in first}
    order = m.funnel_order(first, pipeline_of)
    assert order == [
        "pipelines/a/stages/qualify",
        "pipelines/a/stages/propose",
        "pipelines/a/stages/won",
        "pipelines/b/stages/x",
    ]
    nxt = m.next_in_pipeline(order, pipeline_of)
    assert nxt["pipelines/a/stages/propose"] == "pipelines/a/stages/won"
    assert nxt["pipelines/a/stages/won"] is None  # never into another pipeline
    assert nxt["pipelines/b/stages/x"] is None


def test_forecast_buckets_and_newer():
    assert [m.forecast_bucket(c) for c in range(6)] == [None, "pipeline", "best_case", "commit", None, None]
    assert m.counts_in_weighted(m.FORECAST_COMMIT) and not m.counts_in_weighted(m.FORECAST_OMITTED)
    t = datetime(2026, 1, 1, tzinfo=UTC)
    assert m.is_newer(t, None) and m.is_newer(t, t) and not m.is_newer(t, t + timedelta(seconds=1))
    assert m.as_utc(datetime(2026, 1, 1)) == t and m.as_utc("2026-01-01 00:00:00") == t


def test_closing_stages_come_last_and_convert_to_nothing():
    t = datetime(2026, 1, 1, tzinfo=UTC)
    first = {
        "p/lost": t,
        "p/won": t + timedelta(days=1),
        "p/qualify": t + timedelta(days=2),
        "p/propose": t + timedelta(days=3),
    }
    pipeline_of = dict.fromkeys(first, "p")
    closing = {"p/won": "won", "p/lost": "lost"}
    order = m.funnel_order(first, pipeline_of, closing)
    assert order == ["p/qualify", "p/propose", "p/won", "p/lost"]
    nxt = m.next_in_pipeline(order, pipeline_of, closing)
    assert nxt == {"p/qualify": "p/propose", "p/propose": "p/won", "p/won": None, "p/lost": None}
