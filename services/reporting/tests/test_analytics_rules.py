"""Pure analytics rules: ABC / Pareto, RFM quintiles and segments, health with explained factors, churn."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from crm_reporting.domain import analytics as rules
from crm_reporting.domain.analytics import Abc, Churn

revenues = st.dictionaries(
    st.text(alphabet="abcdefghij", min_size=1, max_size=4),
    st.integers(min_value=0, max_value=10**9),
    max_size=40,
)


@settings(max_examples=100)
@given(revenues)
def test_abc_classes_are_monotone_in_revenue(revenue):
    classes = rules.abc_classes(revenue)
    for a, ra in revenue.items():
        for b, rb in revenue.items():
            if ra > rb:
                assert classes[a] <= classes[b]
        if ra == 0:
            assert classes[a] is Abc.C


@settings(max_examples=100)
@given(revenues)
def test_a_is_the_smallest_set_reaching_80_percent_and_b_reaches_95(revenue):
    classes = rules.abc_classes(revenue)
    total = sum(revenue.values())
    a_revenue = sum(r for c, r in revenue.items() if classes[c] is Abc.A)
    ab_revenue = a_revenue + sum(r for c, r in revenue.items() if classes[c] is Abc.B)
    a_members = [r for c, r in revenue.items() if classes[c] is Abc.A]
    if total == 0:
        assert not a_members
        return
    assert a_revenue * 10000 >= 8000 * total
    # Smallest: without its smallest member, A no longer reaches 80 %.
    assert (a_revenue - min(a_members)) * 10000 < 8000 * total
    assert ab_revenue * 10000 >= 9500 * total


def test_abc_example_and_top_20_percent_share():
    revenue = {"c1": 500, "c2": 300, "c3": 100, "c4": 60, "c5": 40, "c6": 0}
    assert rules.abc_classes(revenue) == {
        "c1": Abc.A,  # 50 % before it: 0 -> A
        "c2": Abc.A,  # 50 % before it < 80 % -> A (reaches 80 %)
        "c3": Abc.B,  # 80 % before it -> B (reaches 90 %)
        "c4": Abc.B,  # 90 % before it < 95 % -> B (reaches 96 %)
        "c5": Abc.C,
        "c6": Abc.C,
    }
    # 6 customers -> top ceil(1.2) = 2: (500 + 300) / 1000.
    assert rules.top_20_percent_share_bp(revenue) == 8000
    assert rules.top_20_percent_share_bp({}) == 0


def test_quintiles_and_segments():
    scores = rules.quintile_scores({f"c{i}": i for i in range(10)})
    assert [scores[f"c{i}"] for i in range(10)] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert rules.quintile_scores({"a": 3, "b": 3}) == {"a": 2, "b": 2}
    assert set(rules.quintile_scores(dict.fromkeys("abcde", 7)).values()) == {3}
    assert rules.rfm_segment(5, 5, 5) == "champions"
    assert rules.rfm_segment(5, 1, 1) == "new"
    assert rules.rfm_segment(3, 4, 2) == "loyal"
    assert rules.rfm_segment(1, 3, 3) == "at_risk"
    assert rules.rfm_segment(1, 1, 1) == "hibernating"


def test_rfm_scores_use_every_currency_and_mark_non_buyers():
    now = datetime(2026, 6, 1, tzinfo=UTC)
    facts = {
        "recent_big": rules.PurchaseFacts(5, now - timedelta(days=1), {"EUR": 1000}),
        "old_small": rules.PurchaseFacts(1, now - timedelta(days=300), {"EUR": 10}),
        "usd_only": rules.PurchaseFacts(2, now - timedelta(days=30), {"USD": 50}),
        "none_new": rules.PurchaseFacts(0, None, {}),
        "none_old": rules.PurchaseFacts(0, None, {}),
    }
    rfm = rules.rfm_scores(facts, now, new_customers=frozenset({"none_new"}))
    assert (rfm["recent_big"].recency, rfm["recent_big"].frequency, rfm["recent_big"].monetary) == (4, 4, 3)
    # Alone in USD: its monetary quintile there is the lowest (1).
    assert rfm["usd_only"].monetary == 1
    assert rfm["old_small"].recency == 1
    assert rfm["none_new"] == rules.Rfm(1, 1, 1, "new")
    assert rfm["none_old"] == rules.Rfm(1, 1, 1, "hibernating")


health_inputs = st.builds(
    rules.HealthInputs,
    days_since_activity=st.one_of(st.none(), st.floats(min_value=0, max_value=2000)),
    open_tickets=st.integers(0, 50),
    sla_breaches_90d=st.integers(0, 50),
    average_csat=st.one_of(st.just(0.0), st.floats(min_value=1, max_value=5)),
    payments_count=st.integers(0, 100),
    overdue_share_bp=st.integers(0, 10000),
    activity_last_30d=st.integers(0, 100),
    activity_prev_60d=st.integers(0, 200),
)


@settings(max_examples=100)
@given(health_inputs)
def test_health_is_bounded_and_explained_by_its_factors(inputs):
    result = rules.health(inputs)
    assert 0 <= result.score <= 100
    assert sum(f.impact for f in result.factors) == result.score - rules.BASE_HEALTH
    assert {f.name for f in result.factors} == {
        "recency",
        "ticket_load",
        "ticket_breaches",
        "csat",
        "overdue_payments",
        "activity_trend",
    }
    assert all(f.explanation.endswith(f"({f.impact:+d})") for f in result.factors)
    assert result.churn_risk is rules.churn_risk(result.score)


def test_health_extremes_and_churn_levels():
    best = rules.health(rules.HealthInputs(1, 0, 0, 4.5, 3, 0, 6, 2))
    assert best.score == 100 and best.churn_risk is Churn.LOW
    worst = rules.health(rules.HealthInputs(None, 9, 4, 1.0, 1, 9000, 0, 10))
    assert worst.score == 0 and worst.churn_risk is Churn.HIGH
    assert rules.churn_risk(70) is Churn.LOW
    assert rules.churn_risk(69) is Churn.MEDIUM
    assert rules.churn_risk(39) is Churn.HIGH


def test_churn_rate():
    t = datetime(2026, 1, 1, tzinfo=UTC)
    day = timedelta(days=1)
    history = {
        "stays": [(t - day, "active")],
        "churns": [(t - day, "active"), (t + day, "churned")],
        "was_churned": [(t - day, "churned"), (t + day, "at_risk")],
        "late": [(t + 2 * day, "active"), (t + 3 * day, "at_risk")],
        "after_end": [(t - day, "active"), (t + 40 * day, "at_risk")],
    }
    # Active at start: stays, churns, after_end (late has no stage then) -> 1 of 3.
    assert rules.churn_rate_bp(history, t, t + 30 * day) == 3333
    assert rules.churn_rate_bp({}, t, None) == 0
