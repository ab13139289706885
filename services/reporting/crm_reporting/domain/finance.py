"""Finance rules of the reporting service (pure): aging buckets, collection rate, paid amounts.

Money is integer minor units of one currency; nothing here converts currencies.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta


class AgingBucket(enum.Enum):
    CURRENT = "current"
    DAYS_1_30 = "days_1_30"
    DAYS_31_60 = "days_31_60"
    DAYS_61_90 = "days_61_90"
    DAYS_OVER_90 = "days_over_90"


# The contract statuses whose unpaid installments are receivables (signed money still owed).
RECEIVABLE_STATUSES = ("ACTIVE", "EXPIRED", "TERMINATED")


def days_past_due(due_date: date, as_of: date) -> int:
    """Whole UTC days after the due date (0 on or before it)."""
    return max(0, (as_of - due_date).days)


def aging_bucket(due_date: date, as_of: date) -> AgingBucket:
    """CURRENT up to and on the due date, then 1-30, 31-60, 61-90 and over 90 days past due."""
    days = (as_of - due_date).days
    if days <= 0:
        return AgingBucket.CURRENT
    if days <= 30:
        return AgingBucket.DAYS_1_30
    if days <= 60:
        return AgingBucket.DAYS_31_60
    if days <= 90:
        return AgingBucket.DAYS_61_90
    return AgingBucket.DAYS_OVER_90


@dataclass
class Aging:
    """Outstanding amounts of one group and currency per bucket."""

    buckets: dict[AgingBucket, int] = field(default_factory=lambda: dict.fromkeys(AgingBucket, 0))

    def add(self, due_date: date, outstanding: int, as_of: date) -> None:
        if outstanding > 0:
            self.buckets[aging_bucket(due_date, as_of)] += outstanding

    @property
    def total(self) -> int:
        return sum(self.buckets.values())


def age(items: Iterable[tuple[date, int]], as_of: date) -> Aging:
    """(due date, outstanding) pairs bucketed; amounts ≤ 0 (paid) count for nothing."""
    aging = Aging()
    for due_date, outstanding in items:
        aging.add(due_date, outstanding, as_of)
    return aging


def collection_rate_bp(collected: int, due: int) -> int:
    """collected / due in basis points (floor), 0 when nothing was due; never above 10000."""
    if due <= 0:
        return 0
    return min(10_000, max(0, collected) * 10_000 // due)


@dataclass(frozen=True)
class InstallmentDue:
    key: str
    due_date: date
    amount: int
    paid: int  # allocated to this installment by confirmed payments

    @property
    def outstanding(self) -> int:
        return max(0, self.amount - self.paid)


def spread_unallocated(installments: Sequence[InstallmentDue], unallocated: int) -> dict[str, int]:
    """Paid amounts per installment once `unallocated` money (payments confirmed while the contract
    had no plan) is applied to the plan oldest due first — the rule the contract service uses when
    it moves such money onto a new plan. Installment paid amounts are capped at their amount."""
    paid = {i.key: min(i.amount, max(0, i.paid)) for i in installments}
    left = max(0, unallocated)
    for item in sorted(installments, key=lambda i: (i.due_date, i.key)):
        if left <= 0:
            break
        room = item.amount - paid[item.key]
        take = min(room, left)
        if take > 0:
            paid[item.key] += take
            left -= take
    return paid


def first_day_at_or_after(moment: datetime) -> date:
    """The first calendar day (UTC) whose midnight is at or after `moment`."""
    moment = moment.astimezone(UTC)
    day = moment.date()
    return day if moment == datetime.combine(day, time.min, UTC) else day + timedelta(days=1)


def day_bounds(start: datetime | None, end: datetime | None) -> tuple[date | None, date | None]:
    """[start, end) as [first day, day after the last) for calendar dates at UTC midnight."""
    return (
        first_day_at_or_after(start) if start is not None else None,
        first_day_at_or_after(end) if end is not None else None,
    )
