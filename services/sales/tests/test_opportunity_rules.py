"""The opportunity rules with no I/O: weighted-amount arithmetic, forecast aggregation and the stage
machine, property-based (hypothesis) against independent reference computations."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_sales.domain import opportunities as rules
from crm_sales.domain.opportunities import (
    FORECAST_CATEGORIES,
    ForecastCategory,
    ForecastGroup,
    OpportunityInput,
    OpportunityState,
)
from crm_shared.access import Scope, ScopeGrant
from crm_shared.errors import FailedPrecondition, InvalidArgument

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
PIPELINE = rules.default_pipeline(NOW)
ADMIN = ScopeGrant(Scope.ALL, "root", "east")
amounts = st.integers(min_value=0, max_value=rules.MAX_AMOUNT_MINOR)
probabilities = st.integers(min_value=0, max_value=100)


def reference_weighted(amount: int, probability: int) -> int:
    # round() on a Fraction rounds half to even: an independent implementation of the rule.
    return round(Fraction(amount * probability, 100))


@given(amounts, probabilities)
def test_weighted_amount_is_exact_round_half_even(amount, probability):
    weighted = rules.weighted_amount(amount, probability)
    assert weighted == reference_weighted(amount, probability)
    assert 0 <= weighted <= amount
    assert abs(Fraction(weighted) - Fraction(amount * probability, 100)) <= Fraction(1, 2)


@given(amounts, probabilities, probabilities)
def test_weighted_amount_grows_with_probability(amount, p, q):
    low, high = sorted((p, q))
    assert rules.weighted_amount(amount, low) <= rules.weighted_amount(amount, high)


@given(amounts)
def test_weighted_amount_endpoints(amount):
    assert rules.weighted_amount(amount, 0) == 0
    assert rules.weighted_amount(amount, 100) == amount


def test_weighted_amount_half_cases_and_bounds():
    assert [rules.weighted_amount(a, 50) for a in (1, 3, 5, 7, 15, 25)] == [0, 2, 2, 4, 8, 12]
    with pytest.raises(ValueError):
        rules.weighted_amount(100, 101)


opportunity_rows = st.lists(
    st.tuples(
        st.sampled_from(["CNY", "USD", "EUR"]),
        st.sampled_from(list(OpportunityState)),
        st.sampled_from(list(ForecastCategory)),
        amounts,
        probabilities,
    ),
    max_size=60,
)


@given(opportunity_rows, st.sampled_from(["CNY", "USD", "JPY"]))
def test_forecast_aggregation_matches_a_per_opportunity_computation(rows, currency):
    # Group the way the SQL GROUP BY does, then aggregate; compare with a naive loop over opportunities.
    grouped: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])
    for cur, state, category, amount, probability in rows:
        group = grouped[(cur, state, category)]
        group[0] += 1
        group[1] += amount
        group[2] += rules.weighted_amount(amount, probability)
    totals = rules.aggregate_forecast(
        [ForecastGroup(c, s, k, n, a, w) for (c, s, k), (n, a, w) in grouped.items()], currency
    )

    categories = {k: [0, 0, 0] for k in FORECAST_CATEGORIES}
    closed_won, pipeline, excluded = [0, 0, 0], 0, defaultdict(int)
    for cur, state, category, amount, probability in rows:
        if cur != currency:
            excluded[cur] += 1
            continue
        weighted = reference_weighted(amount, probability)
        for target in [categories[category]] + ([closed_won] if state is OpportunityState.WON else []):
            target[0] += 1
            target[1] += amount
            target[2] += weighted
        if state is OpportunityState.OPEN and category is not ForecastCategory.OMITTED:
            pipeline += weighted
    assert {k: (t.count, t.amount_minor, t.weighted_minor) for k, t in totals.categories.items()} == {
        k: tuple(v) for k, v in categories.items()
    }
    assert (
        totals.closed_won.count,
        totals.closed_won.amount_minor,
        totals.closed_won.weighted_minor,
    ) == tuple(closed_won)
    assert totals.weighted_pipeline_minor == pipeline
    assert totals.expected_total_minor == closed_won[1] + pipeline
    assert totals.excluded_currencies == dict(excluded)


def fresh(amount=1_000, probability=None):
    return rules.new_opportunity(
        OpportunityInput(
            customer="customers/0192c0de-0000-7000-8000-000000000001",
            title="Deal",
            amount_minor=amount,
            currency_code="CNY",
            expected_close_time=NOW + timedelta(days=30),
            probability=probability,
        ),
        PIPELINE,
        opportunity_id="0192c0de-0000-7000-8000-0000000000aa",
        now=NOW,
        grant=ADMIN,
    )


OPEN_STAGES = [PIPELINE.stage_name(s.id) for s in PIPELINE.stages if s.is_open]
actions = st.lists(
    st.one_of(
        st.tuples(st.just("move"), st.sampled_from(OPEN_STAGES), st.one_of(st.none(), probabilities)),
        st.tuples(st.just("win")),
        st.tuples(st.just("lose"), st.sampled_from(["price", "timing", " "])),
        st.tuples(st.just("reopen")),
        st.tuples(st.just("amount"), amounts),
        st.tuples(st.just("probability"), st.one_of(st.none(), probabilities)),
    ),
    max_size=25,
)


@settings(max_examples=300)
@given(amounts, st.one_of(st.none(), probabilities), actions)
def test_stage_machine_invariants(amount, probability, steps):
    """Whatever callers do: closed means 100/0, history grows by exactly one entry per stage change and
    records the amount of the time, and the weighted amount always follows amount × probability."""
    current = fresh(amount, probability)
    assert current.probability == (10 if probability is None else probability)
    for i, step in enumerate(steps):
        now = NOW + timedelta(minutes=i + 1)
        before = current
        try:
            if step[0] == "move":
                current = rules.move_stage(current, PIPELINE, step[1], step[2], now=now, by="u")
                assert current.probability == (
                    PIPELINE.stage(current.stage_id).default_probability if step[2] is None else step[2]
                )
                assert current.probability_overridden is (step[2] is not None)
            elif step[0] == "win":
                current = rules.win(current, PIPELINE, "", now=now, by="u")
            elif step[0] == "lose":
                current = rules.lose(
                    current, PIPELINE, "", lost_reason=step[1], competitor="", now=now, by="u"
                )
            elif step[0] == "reopen":
                current = rules.reopen(current, PIPELINE, "", now=now, by="u")
                assert PIPELINE.stage(current.stage_id).is_open
                assert current.probability == PIPELINE.stage(current.stage_id).default_probability
            elif step[0] == "amount":
                current, _ = rules.update_opportunity(
                    current,
                    OpportunityInput(amount_minor=step[1], currency_code="CNY"),
                    frozenset({"amount"}),
                    PIPELINE,
                    now=now,
                    grant=ADMIN,
                )
            else:
                current, _ = rules.update_opportunity(
                    current,
                    OpportunityInput(probability=step[1]),
                    frozenset({"probability"}),
                    PIPELINE,
                    now=now,
                    grant=ADMIN,
                )
        except (FailedPrecondition, InvalidArgument) as refused:
            # Refusals are for closed deals, moves into the current stage, and blank lost reasons only.
            assert (
                not before.is_open
                or (step[0] == "reopen")
                or (step[0] == "move" and step[1] == before.stage)
                or (step[0] == "lose" and not step[1].strip())
            ), refused
            current = before
            continue
        stage = PIPELINE.stage(current.stage_id)
        assert current.forecast_category is stage.forecast_category
        assert current.weighted_amount_minor == reference_weighted(current.amount_minor, current.probability)
        if current.state is OpportunityState.WON:
            assert stage.is_won and current.probability == 100 and current.close_time is not None
        elif current.state is OpportunityState.LOST:
            assert stage.is_lost and current.probability == 0 and current.lost_reason.strip()
        else:
            assert stage.is_open and current.close_time is None and not current.lost_reason
        changed_stage = current.stage_id != before.stage_id or current.state is not before.state
        assert len(current.history) == len(before.history) + (1 if changed_stage else 0)
        last = current.history[-1]
        assert (last.stage_id, last.probability) == (
            current.stage_id,
            current.probability,
        ) or not changed_stage
        if changed_stage:
            assert last.amount_minor == current.amount_minor and last.enter_time == now


def test_pipeline_rules_refuse_inconsistent_stages():
    won_wrong = rules.StageInput("", "Won", 90, ForecastCategory.CLOSED, is_won=True)
    closed_open = rules.StageInput("", "Almost", 90, ForecastCategory.CLOSED)
    lost = rules.StageInput("", "Lost", 0, ForecastCategory.OMITTED, is_lost=True)
    with pytest.raises(InvalidArgument) as caught:
        rules.new_pipeline(
            rules.PipelineInput("P", "", (closed_open, won_wrong, lost)), pipeline_id="p", now=NOW
        )
    assert {v.field for v in caught.value.field_violations} == {
        "pipeline.stages[0].forecast_category",  # only won stages are CLOSED
        "pipeline.stages[1].default_probability",  # a won stage is 100 %
    }
    assert rules.stage_id_from_title("Needs analysis", {"needs-analysis"}) == "needs-analysis-2"
