"""Customer analytics rules (pure): ABC / Pareto, RFM, health score with explained factors, churn.

Money is integer minor units; shares are basis points (10000 = 100 %), computed with integer
arithmetic so the same inputs always give the same classes on every database.

ABC: customers sorted by revenue (descending, ties by id); class A is the smallest prefix whose
cumulative revenue reaches 80 % of the total, B extends it to 95 %, the rest (and every customer
without revenue) is C.

Health: BASE (65) plus the impacts of six explained factors; the factors' ranges are chosen so
the score is always within 0..100 without clamping, hence sum(impacts) == score - BASE exactly.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum

A_SHARE_BP = 8000
B_SHARE_BP = 9500
BASE_HEALTH = 65


class Abc(IntEnum):
    # Same numbers as crm.reporting.v1.AbcClass.
    A = 1
    B = 2
    C = 3


class Churn(IntEnum):
    # Same numbers as crm.reporting.v1.ChurnRisk.
    LOW = 1
    MEDIUM = 2
    HIGH = 3


def _ranked(revenue: Mapping[str, int]) -> list[tuple[str, int]]:
    return sorted(revenue.items(), key=lambda item: (-item[1], item[0]))


def abc_classes(revenue: Mapping[str, int]) -> dict[str, Abc]:
    """customer -> class; revenue <= 0 is always C."""
    positive = {c: r for c, r in revenue.items() if r > 0}
    total = sum(positive.values())
    classes = {c: Abc.C for c in revenue}
    cumulative = 0
    for customer, amount in _ranked(positive):
        # The class is decided by the share reached BEFORE this customer: the customer that
        # crosses 80 % is still A (A is the smallest set reaching 80 %).
        if cumulative * 10000 < A_SHARE_BP * total:
            classes[customer] = Abc.A
        elif cumulative * 10000 < B_SHARE_BP * total:
            classes[customer] = Abc.B
        else:
            classes[customer] = Abc.C
        cumulative += amount
    return classes


def share_bp(part: int, total: int) -> int:
    """part / total in basis points, rounded down; 0 when total is 0."""
    return 0 if total <= 0 else part * 10000 // total


def top_20_percent_share_bp(revenue: Mapping[str, int]) -> int:
    """Revenue share of the top ceil(20 % of customers) by revenue (customers without revenue count)."""
    n = len(revenue)
    if n == 0:
        return 0
    k = -(-n // 5)  # ceil(n / 5)
    ranked = _ranked({c: max(r, 0) for c, r in revenue.items()})
    total = sum(r for _, r in ranked)
    return share_bp(sum(r for _, r in ranked[:k]), total)


# --- RFM ---------------------------------------------------------------------------------------


def quintile_scores(values: Mapping[str, float]) -> dict[str, int]:
    """1..5 by rank, 5 = highest value; equal values share the score of their mean rank.

    score = 1 + floor(mean 0-based rank * 5 / n), the mean rank of a tie being
    lower + (equal - 1) / 2 (so a whole population of equals sits in the middle, 3).
    """
    n = len(values)
    ordered = sorted(values.values())
    scores: dict[str, int] = {}
    for customer, value in values.items():
        lower = bisect.bisect_left(ordered, value)
        equal = bisect.bisect_right(ordered, value) - lower
        # Twice the mean rank keeps it integral: 2 * lower + equal - 1.
        scores[customer] = 1 + (2 * lower + equal - 1) * 5 // (2 * n)
    return scores


@dataclass(frozen=True)
class Rfm:
    recency: int
    frequency: int
    monetary: int
    segment: str


@dataclass(frozen=True)
class PurchaseFacts:
    """One customer's purchases (payments), all currencies together except `monetary`."""

    count: int
    last_time: datetime | None
    # Revenue per currency (minor units).
    monetary: Mapping[str, int]


def rfm_segment(r: int, f: int, m: int) -> str:  # noqa: PLR0911 - a decision table
    if r >= 4 and f >= 4:
        return "champions"
    if r >= 4 and f <= 1:
        return "new"
    if f >= 4:
        return "loyal"
    if r >= 3 and f >= 2:
        return "potential_loyalist"
    if r <= 2 and f >= 3:
        return "at_risk"
    if r <= 2:
        return "hibernating"
    return "need_attention"


def rfm_scores(
    facts: Mapping[str, PurchaseFacts], now: datetime, *, new_customers: frozenset = frozenset()
) -> dict[str, Rfm]:
    """RFM quintiles over the customers that bought; recency/frequency over every currency, the
    monetary score is the best quintile over the currencies the customer paid in.

    Customers without purchases score 1/1/1 and are "new" when listed in `new_customers`
    (created recently), else "hibernating".
    """
    buyers = {c: f for c, f in facts.items() if f.count > 0 and f.last_time is not None}
    # Recency: more recent = higher score -> rank on the negated age.
    recency = quintile_scores({c: -(now - f.last_time).total_seconds() for c, f in buyers.items()})
    frequency = quintile_scores({c: f.count for c, f in buyers.items()})
    currencies = sorted({cur for f in buyers.values() for cur, v in f.monetary.items() if v > 0})
    monetary: dict[str, int] = {c: 1 for c in buyers}
    for currency in currencies:
        paid = {c: f.monetary[currency] for c, f in buyers.items() if f.monetary.get(currency, 0) > 0}
        per = quintile_scores(paid)
        for customer, score in per.items():
            monetary[customer] = max(monetary[customer], score)
    result: dict[str, Rfm] = {}
    for customer in facts:
        if customer in buyers:
            r, f, m = recency[customer], frequency[customer], monetary[customer]
            result[customer] = Rfm(r, f, m, rfm_segment(r, f, m))
        else:
            result[customer] = Rfm(1, 1, 1, "new" if customer in new_customers else "hibernating")
    return result


def population_ranks(facts: Mapping[str, PurchaseFacts]) -> tuple[dict[str, Abc], dict[str, Rfm]]:
    """ABC (the best class over the currencies) and RFM of every buyer, from purchase facts alone.

    Time-free: recency quintiles rank the last purchase times (the age from any common "now" gives
    the same order), so the same payments always give the same ranks, whenever they are computed.
    Customers without purchases are left out (they are C and scored locally, see rfm_scores).
    """
    buyers = {c: f for c, f in facts.items() if f.count > 0 and f.last_time is not None}
    abc = dict.fromkeys(buyers, Abc.C)
    currencies = sorted({cur for f in buyers.values() for cur in f.monetary})
    for currency in currencies:
        revenue = {c: f.monetary[currency] for c, f in buyers.items() if currency in f.monetary}
        for customer, cls in abc_classes(revenue).items():
            abc[customer] = min(abc[customer], cls)
    if not buyers:
        return {}, {}
    anchor = max(f.last_time for f in buyers.values() if f.last_time is not None)
    return abc, rfm_scores(buyers, anchor)


def non_buyer_rfm(create_time: datetime | None, at: datetime, new_days: int) -> Rfm:
    """RFM of a customer without purchases: 1/1/1, "new" when created within `new_days` of `at`."""
    new = create_time is not None and create_time >= at - timedelta(days=new_days)
    return Rfm(1, 1, 1, "new" if new else "hibernating")


# --- health and churn --------------------------------------------------------------------------


@dataclass(frozen=True)
class HealthInputs:
    # Days since the last activity (follow-up, purchase, payment, ticket, deal); None = never.
    days_since_activity: float | None
    open_tickets: int
    sla_breaches_90d: int
    average_csat: float  # 0 = never answered
    payments_count: int
    # Overdue receivables / (overdue + paid), basis points, the worst currency; 0 = nothing overdue.
    overdue_share_bp: int
    # Activity events in the last 30 days and in the 60 days before.
    activity_last_30d: int
    activity_prev_60d: int


@dataclass(frozen=True)
class Factor:
    name: str
    value: float
    impact: int
    explanation: str


@dataclass(frozen=True)
class Health:
    score: int
    churn_risk: Churn
    factors: tuple[Factor, ...]


def _recency(days: float | None) -> Factor:
    if days is None:
        return Factor("recency", -1.0, -20, "no activity recorded (-20)")
    whole = int(days)
    if days <= 7:
        impact = 10
    elif days <= 30:
        impact = 5
    elif days <= 60:
        impact = 0
    elif days <= 90:
        impact = -10
    else:
        impact = -20
    return Factor("recency", float(whole), impact, f"last activity {whole} days ago ({impact:+d})")


def _ticket_load(open_tickets: int) -> Factor:
    if open_tickets == 0:
        impact = 5
    elif open_tickets <= 2:
        impact = 0
    elif open_tickets <= 5:
        impact = -5
    else:
        impact = -10
    return Factor("ticket_load", float(open_tickets), impact, f"{open_tickets} open tickets ({impact:+d})")


def _breaches(count: int) -> Factor:
    impact = 5 if count == 0 else (-5 if count == 1 else -10)
    return Factor("ticket_breaches", float(count), impact, f"{count} SLA breaches in 90 days ({impact:+d})")


def _csat(average: float) -> Factor:
    if average <= 0:
        return Factor("csat", 0.0, 0, "no satisfaction answers (+0)")
    impact = 5 if average >= 4 else (0 if average >= 3 else -5)
    return Factor("csat", round(average, 2), impact, f"average CSAT {average:.1f} ({impact:+d})")


def _overdue(payments: int, overdue_bp: int) -> Factor:
    if overdue_bp <= 0:
        impact = 5 if payments > 0 else 0
        text = "nothing overdue" if payments > 0 else "no payments yet"
        return Factor("overdue_payments", 0.0, impact, f"{text} ({impact:+d})")
    impact = -15 if overdue_bp >= 5000 else -10
    share = overdue_bp / 10000
    return Factor("overdue_payments", share, impact, f"{share:.0%} of billed amount overdue ({impact:+d})")


def overdue_share_bp(overdue_minor: int, paid_minor: int) -> int:
    if overdue_minor <= 0:
        return 0
    return max(1, share_bp(overdue_minor, overdue_minor + max(paid_minor, 0)))


def _trend(last_30: int, prev_60: int) -> Factor:
    if last_30 == 0 and prev_60 == 0:
        return Factor("activity_trend", 0.0, 0, "no recent activity to compare (+0)")
    previous_rate = prev_60 / 2
    ratio = last_30 / previous_rate if previous_rate > 0 else 2.0
    if ratio >= 1.2:
        impact = 5
    elif ratio <= 0.5:
        impact = -5
    else:
        impact = 0
    return Factor(
        "activity_trend",
        round(ratio, 4),
        impact,
        f"{last_30} activities in 30 days vs {previous_rate:g}/30 days before ({impact:+d})",
    )


def churn_risk(score: int) -> Churn:
    if score >= 70:
        return Churn.LOW
    if score >= 40:
        return Churn.MEDIUM
    return Churn.HIGH


def health(inputs: HealthInputs) -> Health:
    """Score = BASE + sum of impacts; impacts range -65..+35 over BASE 65 -> always 0..100."""
    factors = (
        _recency(inputs.days_since_activity),
        _ticket_load(inputs.open_tickets),
        _breaches(inputs.sla_breaches_90d),
        _csat(inputs.average_csat),
        _overdue(inputs.payments_count, inputs.overdue_share_bp),
        _trend(inputs.activity_last_30d, inputs.activity_prev_60d),
    )
    score = BASE_HEALTH + sum(f.impact for f in factors)
    return Health(score=score, churn_risk=churn_risk(score), factors=factors)


# --- churn rate --------------------------------------------------------------------------------

CHURNED_STAGES = frozenset({"at_risk", "churned"})


def churn_rate_bp(
    stage_history: Mapping[str, Sequence[tuple[datetime, str]]], start: datetime | None, end: datetime | None
) -> int:
    """Customers that became at_risk/churned in [start, end) over customers not at_risk/churned at start.

    stage_history: customer -> [(time, stage)] (any order). A customer counts as active at start when
    its latest stage before start is known and not at_risk/churned (start None = before everything:
    nobody has a stage yet, so the denominator is every customer whose first stage is active).
    """
    active_at_start: set[str] = set()
    churned: set[str] = set()
    for customer, history in stage_history.items():
        ordered = sorted(history)
        before = [s for t, s in ordered if start is not None and t < start]
        inside = [s for t, s in ordered if (start is None or t >= start) and (end is None or t < end)]
        if start is not None:
            if not before or before[-1] in CHURNED_STAGES:
                continue
        elif not inside or inside[0] in CHURNED_STAGES:
            continue
        active_at_start.add(customer)
        if any(s in CHURNED_STAGES for s in inside):
            churned.add(customer)
    return share_bp(len(churned), len(active_at_start))
