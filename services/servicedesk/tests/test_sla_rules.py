"""SLA rules without a database: which policy applies and how ticket changes move the clocks."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from crm_servicedesk.domain.business_time import BusinessCalendar, WorkingRange, add_business_time
from crm_servicedesk.domain.sla import (
    ClockState,
    SlaCondition,
    SlaMetric,
    SlaPolicy,
    breach_due,
    breached,
    match_policy,
    reconcile,
    timer_plan,
    warning_due,
)
from crm_servicedesk.domain.tickets import Ticket, TicketChannel, TicketPriority, TicketStatus, TicketType

# UTC office hours Monday-Friday 09:00-17:00; 5 January 2026 is a Monday.
CALENDAR = BusinessCalendar(
    time_zone="UTC", working_hours=tuple(WorkingRange.parse(day, "09:00", "17:00") for day in range(1, 6))
)
MONDAY_9 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
ANY = SlaCondition()


def policy(policy_id: str, *, priority=0, created=T0, condition=ANY, active=True, **targets) -> SlaPolicy:
    return SlaPolicy(
        id=policy_id,
        calendar_id="cal",
        create_time=created,
        update_time=created,
        priority=priority,
        active=active,
        condition=condition,
        targets={SlaMetric(metric): timedelta(hours=hours) for metric, hours in targets.items()}
        or {SlaMetric.FIRST_RESPONSE: timedelta(hours=4)},
    )


def ticket(**fields) -> Ticket:
    values = dict(
        id="t1", number="T-000001", subject="s", requester="r", create_time=MONDAY_9, update_time=MONDAY_9
    )
    values.update(fields)
    return Ticket(**values)


def test_the_first_matching_active_policy_by_priority_then_creation_applies():
    urgent_vip = SlaCondition(priorities=(TicketPriority.URGENT,), customer_tiers=("vip",))
    policies = [
        policy("catch-all", priority=100),
        policy("vip-urgent", priority=10, condition=urgent_vip),
        policy("later-twin", priority=20, created=T0 + timedelta(days=1)),
        policy("earlier-twin", priority=20, created=T0),
        policy("inactive", priority=0, active=False),
    ]
    vip_urgent = ticket(priority=TicketPriority.URGENT, customer_tier="vip")
    assert match_policy(policies, vip_urgent).id == "vip-urgent"
    assert match_policy(policies, replace(vip_urgent, customer_tier="B")).id == "earlier-twin"
    incidents_by_phone = SlaCondition(types=(TicketType.INCIDENT,), channels=(TicketChannel.PHONE,))
    only = [policy("phone-incidents", condition=incidents_by_phone)]
    assert (
        match_policy(only, ticket(type=TicketType.INCIDENT, channel=TicketChannel.PHONE)).id
        == "phone-incidents"
    )
    assert match_policy(only, ticket(type=TicketType.INCIDENT, channel=TicketChannel.EMAIL)) is None


def test_agent_reply_meets_first_response_with_its_business_time():
    sla = policy("p", first_response=4, resolution=16)
    created = reconcile({}, ticket(), sla, CALENDAR, event="created", now=MONDAY_9)
    assert set(created.clocks) == {SlaMetric.FIRST_RESPONSE, SlaMetric.RESOLUTION}
    # Reply at 18:00 (after hours): only 8 business hours counted, the 4 h target was missed.
    reply_at = MONDAY_9 + timedelta(hours=9)
    replied = reconcile(
        created.clocks, ticket(status=TicketStatus.OPEN), sla, CALENDAR, event="agent_reply", now=reply_at
    )
    assert replied.response.metric is SlaMetric.FIRST_RESPONSE
    assert replied.response.business_time == timedelta(hours=8)
    first = replied.clocks[SlaMetric.FIRST_RESPONSE]
    assert (first.state, first.achieved_time) == (ClockState.ACHIEVED, reply_at)
    assert first.remaining(CALENDAR, reply_at) == -timedelta(hours=4)
    assert replied.clocks[SlaMetric.RESOLUTION].state is ClockState.RUNNING


def test_customer_reply_starts_a_new_next_response_cycle_only_after_the_first_response():
    sla = policy("p", first_response=4, next_response=2)
    clocks = reconcile({}, ticket(), sla, CALENDAR, event="created", now=MONDAY_9).clocks
    early = reconcile(
        clocks, ticket(), sla, CALENDAR, event="customer_reply", now=MONDAY_9 + timedelta(hours=1)
    )
    assert SlaMetric.NEXT_RESPONSE not in early.clocks
    now = MONDAY_9 + timedelta(hours=2)
    clocks = reconcile(clocks, ticket(), sla, CALENDAR, event="agent_reply", now=now).clocks
    for cycle in (1, 2):
        now += timedelta(minutes=30)
        clocks = reconcile(clocks, ticket(), sla, CALENDAR, event="customer_reply", now=now).clocks
        assert clocks[SlaMetric.NEXT_RESPONSE].cycle == cycle
        assert clocks[SlaMetric.NEXT_RESPONSE].due_time(CALENDAR, now) == now + timedelta(hours=2)
        now += timedelta(minutes=30)
        answered = reconcile(clocks, ticket(), sla, CALENDAR, event="agent_reply", now=now)
        assert answered.response == type(answered.response)(SlaMetric.NEXT_RESPONSE, timedelta(minutes=30))
        clocks = answered.clocks


def test_pending_pauses_and_reopen_resumes_resolution_with_elapsed_time_kept():
    sla = policy("p", resolution=8)
    clocks = reconcile({}, ticket(), sla, CALENDAR, event="created", now=MONDAY_9).clocks
    pending = reconcile(
        clocks,
        ticket(status=TicketStatus.PENDING),
        sla,
        CALENDAR,
        event="status",
        now=MONDAY_9 + timedelta(hours=2),
    ).clocks
    frozen = pending[SlaMetric.RESOLUTION]
    assert frozen.state is ClockState.PAUSED
    assert frozen.remaining(CALENDAR, MONDAY_9 + timedelta(days=1)) == timedelta(hours=6)
    # Resumed Tuesday 09:00: 6 h left, due Tuesday 15:00 (a day later than without the pause).
    tuesday_9 = MONDAY_9 + timedelta(days=1)
    resumed = reconcile(
        pending, ticket(status=TicketStatus.OPEN), sla, CALENDAR, event="status", now=tuesday_9
    )
    assert resumed.clocks[SlaMetric.RESOLUTION].due_time(CALENDAR, tuesday_9) == tuesday_9 + timedelta(
        hours=6
    )
    resolved = reconcile(
        resumed.clocks,
        ticket(status=TicketStatus.RESOLVED),
        sla,
        CALENDAR,
        event="status",
        now=tuesday_9 + timedelta(hours=1),
    ).clocks
    assert resolved[SlaMetric.RESOLUTION].state is ClockState.ACHIEVED
    wednesday_9 = tuesday_9 + timedelta(days=1)
    reopened = reconcile(
        resolved, ticket(status=TicketStatus.OPEN), sla, CALENDAR, event="reopened", now=wednesday_9
    ).clocks
    clock = reopened[SlaMetric.RESOLUTION]
    assert (clock.state, clock.cycle) == (ClockState.RUNNING, 1)
    assert clock.remaining(CALENDAR, wednesday_9) == timedelta(hours=5)


def test_no_matching_policy_means_no_clocks():
    assert reconcile({}, ticket(), None, None, event="created", now=MONDAY_9).clocks == {}


@settings(max_examples=100, deadline=None)
@given(
    target_minutes=st.integers(1, 40 * 60),
    percent=st.integers(1, 99),
    probe_minutes=st.integers(0, 80 * 60),
)
def test_warning_and_breach_are_due_exactly_at_their_moments(target_minutes, percent, probe_minutes):
    sla = replace(
        policy("p", resolution=1), targets={SlaMetric.RESOLUTION: timedelta(minutes=target_minutes)}
    )
    sla.warning_percent = percent
    clock = reconcile({}, ticket(), sla, CALENDAR, event="created", now=MONDAY_9).clocks[SlaMetric.RESOLUTION]
    plan = timer_plan(clock, CALENDAR, MONDAY_9)
    target = timedelta(minutes=target_minutes)
    assert plan.breach_at == add_business_time(CALENDAR, MONDAY_9, target)
    assert plan.warning_at == add_business_time(CALENDAR, MONDAY_9, target * percent / 100)
    probe = MONDAY_9 + timedelta(minutes=probe_minutes)
    assert warning_due(clock, CALENDAR, probe) == (probe >= plan.warning_at)
    assert breach_due(clock, CALENDAR, probe) == (probe >= plan.breach_at)
    if probe >= plan.breach_at:
        # Once breached nothing more is planned and nothing is due again for this cycle.
        done = breached(clock, CALENDAR, probe)
        assert timer_plan(done, CALENDAR, probe) == type(plan)(None, None)
        assert not breach_due(done, CALENDAR, probe) and not warning_due(done, CALENDAR, probe)
        assert done.due_time(CALENDAR, probe) == plan.breach_at
