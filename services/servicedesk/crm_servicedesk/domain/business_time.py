"""Business time: the working hours of a calendar, in its IANA time zone, minus its holidays.

A calendar turns into a sequence of working intervals in UTC (one per working range of each
non-holiday local date). Business time is the real time those intervals cover, so a
09:00-18:00 day is 9 hours on the day the clocks change too, and a range spanning the change
itself counts the hours that actually passed. All arithmetic walks the same intervals, so
adding a duration and measuring it back always agree.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

MINUTES_PER_DAY = 24 * 60
# A calendar with at least one range cannot go longer than this without a working interval
# (holidays are capped at 1000, so at most ~1000 weeks are fully off).
_MAX_DAYS_WITHOUT_WORK = 7 * 1010


class CalendarError(ValueError):
    """A calendar that cannot be used (unknown zone, overlapping or empty ranges)."""

    def __init__(self, field_path: str, message: str) -> None:
        super().__init__(message)
        self.field_path = field_path


@dataclass(frozen=True, order=True)
class WorkingRange:
    """Working hours of one ISO weekday (1 = Monday .. 7 = Sunday), minutes after local midnight."""

    weekday: int
    start_minute: int
    end_minute: int

    @classmethod
    def parse(cls, weekday: int, start: str, end: str) -> WorkingRange:
        return cls(weekday, _minutes(start), _minutes(end))

    @property
    def start_text(self) -> str:
        return _clock_text(self.start_minute)

    @property
    def end_text(self) -> str:
        return _clock_text(self.end_minute)


@dataclass(frozen=True)
class BusinessCalendar:
    time_zone: str
    working_hours: tuple[WorkingRange, ...]
    holidays: frozenset[date] = field(default_factory=frozenset)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _clock_text(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def validate_calendar(calendar: BusinessCalendar) -> None:
    """Raise CalendarError naming the offending field (time_zone or working_hours)."""
    if not is_known_time_zone(calendar.time_zone):
        raise CalendarError("time_zone", f"unknown IANA time zone {calendar.time_zone!r}")
    if not calendar.working_hours:
        raise CalendarError("working_hours", "at least one working range is required")
    by_day: dict[int, list[WorkingRange]] = {}
    for working_range in calendar.working_hours:
        if not 1 <= working_range.weekday <= 7:
            raise CalendarError("working_hours", "day must be MONDAY..SUNDAY")
        if not 0 <= working_range.start_minute < working_range.end_minute <= MINUTES_PER_DAY:
            raise CalendarError(
                "working_hours",
                f"range {working_range.start_text}-{working_range.end_text} must end after it starts",
            )
        by_day.setdefault(working_range.weekday, []).append(working_range)
    for ranges in by_day.values():
        ranges.sort()
        for earlier, later in itertools.pairwise(ranges):
            if later.start_minute < earlier.end_minute:
                raise CalendarError(
                    "working_hours",
                    f"ranges {earlier.start_text}-{earlier.end_text} and "
                    f"{later.start_text}-{later.end_text} of one day overlap",
                )


@cache
def _known_zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def is_known_time_zone(name: str) -> bool:
    if not name or name not in _known_zone_names():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _local_moment(day: date, minute: int, zone: ZoneInfo) -> datetime:
    """UTC instant of local `day` + `minute` (24:00 is the next midnight); fold=0 for gaps/overlaps."""
    local = datetime.combine(day, time(0), tzinfo=zone) + timedelta(minutes=minute)
    # Adding a timedelta to an aware datetime is wall-clock arithmetic; re-attach the zone so
    # the offset of the resulting local time is looked up afresh.
    local = datetime.combine(local.date(), local.time(), tzinfo=zone)
    return local.astimezone(UTC)


def working_intervals(calendar: BusinessCalendar, since: datetime) -> Iterator[tuple[datetime, datetime]]:
    """Ascending, disjoint UTC intervals of working time ending after `since` (clipped to it)."""
    zone = calendar.zone
    ranges_by_day: dict[int, list[WorkingRange]] = {}
    for working_range in sorted(calendar.working_hours):
        ranges_by_day.setdefault(working_range.weekday, []).append(working_range)
    if not ranges_by_day:
        raise CalendarError("working_hours", "at least one working range is required")
    day = since.astimezone(zone).date() - timedelta(days=1)
    last_end = since
    idle_days = 0
    while True:
        produced = False
        if day not in calendar.holidays:
            for working_range in ranges_by_day.get(day.isoweekday(), ()):
                start = _local_moment(day, working_range.start_minute, zone)
                end = _local_moment(day, working_range.end_minute, zone)
                # Around a DST gap local times may map out of order: never overlap or go back.
                start = max(start, last_end)
                if end <= start:
                    continue
                last_end = end
                produced = True
                yield start, end
        idle_days = 0 if produced else idle_days + 1
        if idle_days > _MAX_DAYS_WITHOUT_WORK:
            raise CalendarError("working_hours", "the calendar has no working time left")
        day += timedelta(days=1)


def add_business_time(calendar: BusinessCalendar, start: datetime, duration: timedelta) -> datetime:
    """The moment `duration` of business time after `start` (start itself for zero).

    A result that exhausts a working interval exactly is that interval's end, not the next start.
    """
    if duration < timedelta(0):
        raise ValueError("duration must not be negative")
    if duration == timedelta(0):
        return start
    left = duration
    for interval_start, interval_end in working_intervals(calendar, start):
        available = interval_end - interval_start
        if left <= available:
            return interval_start + left
        left -= available
    raise AssertionError("unreachable: working_intervals never ends")


def business_time_between(calendar: BusinessCalendar, a: datetime, b: datetime) -> timedelta:
    """Business time from a to b (negative when b is before a)."""
    if b < a:
        return -business_time_between(calendar, b, a)
    total = timedelta(0)
    for interval_start, interval_end in working_intervals(calendar, a):
        if interval_start >= b:
            break
        total += min(interval_end, b) - interval_start
    return total


def is_working_moment(calendar: BusinessCalendar, moment: datetime) -> bool:
    """Inside a working interval, its end included."""
    for interval_start, interval_end in working_intervals(calendar, moment - timedelta(microseconds=1)):
        return interval_start <= moment <= interval_end
    return False
