"""Business-time arithmetic: hand-checked examples and properties across nights, weekends,
holidays, time zones and daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from crm_servicedesk.domain.business_time import (
    BusinessCalendar,
    CalendarError,
    WorkingRange,
    add_business_time,
    business_time_between,
    is_working_moment,
    validate_calendar,
)
from crm_servicedesk.domain.sla import ClockState, SlaClock, SlaMetric, paused, resumed

WEEKDAYS = (1, 2, 3, 4, 5)
ZONES = ("Europe/Berlin", "America/New_York", "Asia/Shanghai", "Australia/Sydney", "UTC")
# Days the clocks change in 2026 (Berlin, New York, Sydney) plus common holidays.
SPECIAL_DAYS = (
    date(2026, 3, 8),
    date(2026, 3, 29),
    date(2026, 4, 5),
    date(2026, 10, 4),
    date(2026, 10, 25),
    date(2026, 11, 1),
    date(2026, 12, 25),
    date(2027, 1, 1),
)


def office(zone: str, *ranges: tuple[str, str], days=WEEKDAYS, holidays=()) -> BusinessCalendar:
    return BusinessCalendar(
        time_zone=zone,
        working_hours=tuple(WorkingRange.parse(day, start, end) for day in days for start, end in ranges),
        holidays=frozenset(holidays),
    )


def local(zone: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone))


# --- hand-checked examples ----------------------------------------------------------------------


def test_friday_evening_plus_two_hours_is_monday_ten():
    berlin = office("Europe/Berlin", ("09:00", "18:00"))
    due = add_business_time(berlin, local("Europe/Berlin", 2026, 1, 9, 17, 0), timedelta(hours=2))
    assert due == local("Europe/Berlin", 2026, 1, 12, 10, 0)


def test_lunch_break_and_holiday_are_skipped():
    berlin = office("Europe/Berlin", ("09:00", "12:00"), ("13:00", "18:00"), holidays=[date(2026, 1, 12)])
    # Friday 11:00 + 8h: 1h before lunch, 5h after, then Monday is a holiday: 2h on Tuesday.
    due = add_business_time(berlin, local("Europe/Berlin", 2026, 1, 9, 11, 0), timedelta(hours=8))
    assert due == local("Europe/Berlin", 2026, 1, 13, 11, 0)


def test_a_working_day_is_nine_hours_on_the_day_the_clocks_change():
    every_day = office("Europe/Berlin", ("09:00", "18:00"), days=range(1, 8))
    # Sunday 29 March 2026: 02:00 CET -> 03:00 CEST.
    day_start = local("Europe/Berlin", 2026, 3, 29, 9, 0)
    assert business_time_between(
        every_day, day_start, local("Europe/Berlin", 2026, 3, 29, 18, 0)
    ) == timedelta(hours=9)
    # Saturday 17:00 (CET, UTC+1) + 2h -> Sunday 10:00 CEST (UTC+2) = 08:00 UTC.
    due = add_business_time(every_day, local("Europe/Berlin", 2026, 3, 28, 17, 0), timedelta(hours=2))
    assert due == datetime(2026, 3, 29, 8, 0, tzinfo=UTC)
    assert due == local("Europe/Berlin", 2026, 3, 29, 10, 0)


def test_a_round_the_clock_range_counts_the_hours_that_really_passed():
    always = office("America/New_York", ("00:00", "24:00"), days=range(1, 8))
    # 8 March 2026: New York springs forward, that day has 23 hours; 1 November has 25.
    spring = business_time_between(
        always, local("America/New_York", 2026, 3, 8, 0, 0), local("America/New_York", 2026, 3, 9, 0, 0)
    )
    autumn = business_time_between(
        always, local("America/New_York", 2026, 11, 1, 0, 0), local("America/New_York", 2026, 11, 2, 0, 0)
    )
    assert (spring, autumn) == (timedelta(hours=23), timedelta(hours=25))


def test_shanghai_calendar_uses_its_own_time_zone():
    shanghai = office("Asia/Shanghai", ("09:00", "18:00"))
    # 01:00 UTC Monday is 09:00 in Shanghai: 4 business hours later is 13:00 local = 05:00 UTC.
    due = add_business_time(shanghai, datetime(2026, 1, 5, 1, 0, tzinfo=UTC), timedelta(hours=4))
    assert due == datetime(2026, 1, 5, 5, 0, tzinfo=UTC)


def test_zero_duration_is_due_at_once_and_measuring_backwards_is_negative():
    berlin = office("Europe/Berlin", ("09:00", "18:00"))
    start = local("Europe/Berlin", 2026, 1, 10, 12, 0)  # a Saturday
    assert add_business_time(berlin, start, timedelta(0)) == start
    monday_noon = local("Europe/Berlin", 2026, 1, 12, 12, 0)
    assert business_time_between(berlin, monday_noon, start) == -timedelta(hours=3)


@pytest.mark.parametrize(
    ("calendar", "field"),
    [
        (office("Mars/Olympus_Mons", ("09:00", "18:00")), "time_zone"),
        (office("", ("09:00", "18:00")), "time_zone"),
        (BusinessCalendar(time_zone="Europe/Berlin", working_hours=()), "working_hours"),
        (office("Europe/Berlin", ("09:00", "13:00"), ("12:00", "18:00")), "working_hours"),
        (office("Europe/Berlin", ("18:00", "09:00")), "working_hours"),
    ],
)
def test_invalid_calendars_name_the_field(calendar, field):
    with pytest.raises(CalendarError) as raised:
        validate_calendar(calendar)
    assert raised.value.field_path == field


# --- properties ---------------------------------------------------------------------------------


@st.composite
def calendars(draw) -> BusinessCalendar:
    zone = draw(st.sampled_from(ZONES))
    shape = draw(st.sampled_from(["office", "split", "night", "random"]))
    if shape == "office":
        ranges = [WorkingRange.parse(day, "09:00", "18:00") for day in WEEKDAYS]
    elif shape == "split":
        ranges = [
            WorkingRange.parse(day, s, e)
            for day in WEEKDAYS
            for s, e in (("08:00", "12:00"), ("13:30", "17:00"))
        ]
    elif shape == "night":
        # Ranges across the small hours, where the clocks change.
        ranges = [
            WorkingRange.parse(day, s, e)
            for day in range(1, 8)
            for s, e in (("00:00", "03:30"), ("22:00", "24:00"))
        ]
    else:
        ranges = []
        for day in range(1, 8):
            if draw(st.booleans()):
                start = draw(st.integers(0, 47)) * 30
                end = draw(st.integers(start // 30 + 1, 48)) * 30
                ranges.append(WorkingRange(day, start, end))
        if not ranges:
            ranges = [WorkingRange(3, 10 * 60, 11 * 60)]
    holidays = draw(st.sets(st.sampled_from(SPECIAL_DAYS), max_size=4))
    calendar = BusinessCalendar(time_zone=zone, working_hours=tuple(ranges), holidays=frozenset(holidays))
    validate_calendar(calendar)
    return calendar


@st.composite
def moments(draw) -> datetime:
    """Mostly near a DST change or holiday, otherwise anywhere in 2026."""
    if draw(st.booleans()):
        day = draw(st.sampled_from(SPECIAL_DAYS))
        base = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(days=1)
        return base + timedelta(minutes=draw(st.integers(0, 3 * 24 * 60)))
    return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=draw(st.integers(0, 365 * 24 * 3600)))


durations = st.integers(0, 120 * 3600).map(lambda seconds: timedelta(seconds=seconds))


@settings(max_examples=200, deadline=None)
@given(calendar=calendars(), start=moments(), duration=durations)
def test_adding_then_measuring_back_gives_the_same_duration(calendar, start, duration):
    due = add_business_time(calendar, start, duration)
    assert due >= start
    assert business_time_between(calendar, start, due) == duration


@settings(max_examples=200, deadline=None)
@given(calendar=calendars(), start=moments(), duration=durations)
def test_a_due_time_lies_inside_working_hours(calendar, start, duration):
    assume(duration > timedelta(0))
    assert is_working_moment(calendar, add_business_time(calendar, start, duration))


@settings(max_examples=150, deadline=None)
@given(calendar=calendars(), start=moments(), a=durations, b=durations)
def test_adding_a_then_b_equals_adding_their_sum(calendar, start, a, b):
    step = add_business_time(calendar, start, a)
    assert add_business_time(calendar, step, b) == add_business_time(calendar, start, a + b)


@settings(max_examples=150, deadline=None)
@given(calendar=calendars(), start=moments(), a=durations, b=durations)
def test_more_business_time_is_never_due_earlier(calendar, start, a, b):
    shorter, longer = sorted((a, b))
    assert add_business_time(calendar, start, shorter) <= add_business_time(calendar, start, longer)


@settings(max_examples=150, deadline=None)
@given(
    calendar=calendars(),
    start=moments(),
    offsets=st.lists(st.integers(0, 10 * 24 * 3600), min_size=3, max_size=3).map(sorted),
)
def test_a_pause_never_counts(calendar, start, offsets):
    pause_at, resume_at, end = (start + timedelta(seconds=s) for s in offsets)
    whole = business_time_between(calendar, start, end)
    pending = business_time_between(calendar, pause_at, resume_at)
    before, after = (
        business_time_between(calendar, start, pause_at),
        business_time_between(calendar, resume_at, end),
    )
    assert whole - pending == before + after
    # The same through an SLA clock: running, paused while PENDING, resumed.
    clock = SlaClock(
        metric=SlaMetric.RESOLUTION,
        cycle=1,
        target=timedelta(hours=8),
        warning_percent=80,
        start_time=start,
        running_since=start,
    )
    clock = resumed(paused(clock, calendar, pause_at), resume_at)
    assert clock.state is ClockState.RUNNING
    assert clock.elapsed(calendar, end) == before + after
    # The due time moved later by exactly the business time the pause would have counted.
    left = clock.target - before
    assert clock.due_time(calendar, resume_at) == add_business_time(
        calendar, resume_at, max(left, timedelta(0))
    )
