"""Pure sales metrics: rates in basis points, money divisions, days, funnel order and forecast buckets.

Money is integer minor units; a division of money rounds half away from zero to a whole minor
unit. Rates are integer basis points (10000 = 100 %), rounded half up; a rate over nothing is 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

BP = 10_000
SECONDS_PER_DAY = 86_400.0

# crm.sales.v1.ForecastCategory values (kept numeric: the domain does not import protobuf).
FORECAST_PIPELINE = 1
FORECAST_BEST_CASE = 2
FORECAST_COMMIT = 3
FORECAST_CLOSED = 4
FORECAST_OMITTED = 5


def rate_bp(numerator: int, denominator: int) -> int:
    """numerator / denominator in basis points, rounded half up; 0 when the denominator is 0."""
    if denominator <= 0 or numerator <= 0:
        return 0
    return (2 * numerator * BP + denominator) // (2 * denominator)


def win_rate_bp(won: int, lost: int) -> int:
    return rate_bp(won, won + lost)


def attainment_bp(actual_minor: int, commit_minor: int) -> int:
    """How much of the committed number is in: actual / (actual + commit)."""
    return rate_bp(actual_minor, actual_minor + commit_minor)


def conversion_rates_bp(entered: Sequence[int]) -> list[int]:
    """entered(next) / entered(this) for stages in funnel order; the last stage converts to nothing."""
    return [rate_bp(entered[i + 1], entered[i]) if i + 1 < len(entered) else 0 for i in range(len(entered))]


def divide_money(amount_minor: int, count: int) -> int:
    """amount / count in whole minor units, rounded half away from zero; 0 when count is 0."""
    if count <= 0:
        return 0
    sign = -1 if amount_minor < 0 else 1
    return sign * ((2 * abs(amount_minor) + count) // (2 * count))


def days(seconds: float | None) -> float:
    return 0.0 if not seconds else seconds / SECONDS_PER_DAY


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def month_key(when: datetime | None) -> str:
    """Calendar month (UTC) "2026-03"; "" when unknown."""
    if when is None:
        return ""
    return when.astimezone(UTC).strftime("%Y-%m")


CLOSING_RANK = {"": 0, "won": 1, "lost": 2}


def funnel_order(
    first_seen: dict[str, datetime], pipeline_of: dict[str, str], closing_of: dict[str, str] | None = None
) -> list[str]:
    """Stages by pipeline; open stages first, then won, then lost stages; then by the first time
    any opportunity entered them, then by name.

    The events carry no pipeline definition, so a pipeline's stage order is the order in which
    opportunities first reached its stages — the forward order for any pipeline in use. A stage
    entered by a win or a loss is a closing stage and comes after every open one.
    """
    closing_of = closing_of or {}
    return sorted(
        first_seen,
        key=lambda s: (pipeline_of.get(s, ""), CLOSING_RANK.get(closing_of.get(s, ""), 0), first_seen[s], s),
    )


def next_in_pipeline(
    order: Sequence[str], pipeline_of: dict[str, str], closing_of: dict[str, str] | None = None
) -> dict[str, str | None]:
    """Each stage's next stage in the same pipeline (None for the last one and for closing stages).

    The last open stage converts into the first won stage."""
    closing_of = closing_of or {}
    result: dict[str, str | None] = {}
    for i, stage in enumerate(order):
        nxt = order[i + 1] if i + 1 < len(order) else None
        same = nxt is not None and pipeline_of.get(nxt) == pipeline_of.get(stage)
        result[stage] = nxt if same and not closing_of.get(stage) and closing_of.get(nxt) != "lost" else None
    return result


def forecast_bucket(category: int) -> str | None:
    """The forecast column an open opportunity of this category counts in (None: not forecast)."""
    return {
        FORECAST_PIPELINE: "pipeline",
        FORECAST_BEST_CASE: "best_case",
        FORECAST_COMMIT: "commit",
    }.get(category)


def counts_in_weighted(category: int) -> bool:
    """Weighted pipeline: every open opportunity except the omitted ones (and closed ones)."""
    return category not in (FORECAST_OMITTED, FORECAST_CLOSED)


def is_newer(candidate: datetime, applied: datetime | None) -> bool:
    """An event snapshot replaces the stored one when it is at least as recent."""
    return applied is None or candidate >= applied


def as_utc(when: datetime) -> datetime:
    """A datetime from an aggregate (SQLite returns min() of a UTC column naive, or as text)."""
    if isinstance(when, str):
        when = datetime.fromisoformat(when)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
