"""SLA rules: policy matching, the clocks of a ticket and how ticket changes move them.

A clock measures one metric (first response, next response, resolution) in business time.
It runs in segments: `accumulated` is the business time of the segments already closed
(by a pause), `running_since` the start of the open one. Pausing closes the segment, so
time spent PENDING never counts and the due time moves later by exactly that much.
All functions are pure: they take clocks and return new ones.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from crm_servicedesk.domain.business_time import BusinessCalendar, add_business_time, business_time_between
from crm_servicedesk.domain.tickets import Ticket, TicketChannel, TicketPriority, TicketStatus, TicketType

DEFAULT_WARNING_PERCENT = 80


class SlaMetric(enum.StrEnum):
    FIRST_RESPONSE = "first_response"
    NEXT_RESPONSE = "next_response"
    RESOLUTION = "resolution"


class EscalationKind(enum.StrEnum):
    REASSIGN = "reassign"
    RAISE_PRIORITY = "raise_priority"
    NOTIFY = "notify"


class ClockState(enum.StrEnum):
    RUNNING = "running"
    PAUSED = "paused"  # the ticket is PENDING
    ACHIEVED = "achieved"  # the target was met (possibly late: see breached_time)
    STOPPED = "stopped"  # no longer measured (a response clock of a resolved ticket)


# What a change of the ticket means for its clocks (service/sla.recompute's `event`).
EVENTS = frozenset(
    {"created", "updated", "status", "assigned", "agent_reply", "customer_reply", "reopened", "snapshot"}
)


@dataclass(frozen=True)
class SlaCondition:
    """Empty lists match anything."""

    priorities: tuple[TicketPriority, ...] = ()
    customer_tiers: tuple[str, ...] = ()
    types: tuple[TicketType, ...] = ()
    channels: tuple[TicketChannel, ...] = ()

    def matches(self, ticket: Ticket) -> bool:
        return (
            (not self.priorities or ticket.priority in self.priorities)
            and (not self.customer_tiers or ticket.customer_tier in self.customer_tiers)
            and (not self.types or ticket.type in self.types)
            and (not self.channels or ticket.channel in self.channels)
        )


@dataclass(frozen=True)
class EscalationAction:
    metric: SlaMetric
    kind: EscalationKind
    team: str = ""
    assignee: str = ""
    notify: tuple[str, ...] = ()


@dataclass(kw_only=True)
class SlaPolicy:
    id: str
    calendar_id: str
    create_time: datetime
    update_time: datetime
    display_name: str = ""
    priority: int = 0
    active: bool = True
    condition: SlaCondition = field(default_factory=SlaCondition)
    targets: dict[SlaMetric, timedelta] = field(default_factory=dict)
    warning_percent: int = DEFAULT_WARNING_PERCENT
    escalations: tuple[EscalationAction, ...] = ()
    row_version: int = 1

    @property
    def name(self) -> str:
        return f"slaPolicies/{self.id}"

    def escalations_for(self, metric: SlaMetric) -> list[EscalationAction]:
        return [action for action in self.escalations if action.metric is metric]


def match_policy(policies: Iterable[SlaPolicy], ticket: Ticket) -> SlaPolicy | None:
    """The first active policy (ascending priority, then creation) whose condition matches."""
    ordered = sorted(
        (policy for policy in policies if policy.active), key=lambda p: (p.priority, p.create_time, p.id)
    )
    return next((policy for policy in ordered if policy.condition.matches(ticket)), None)


def effective_warning_percent(value: int) -> int:
    """0 means "not set" in the API: the default applies."""
    return value if value > 0 else DEFAULT_WARNING_PERCENT


@dataclass(frozen=True)
class SlaClock:
    metric: SlaMetric
    cycle: int
    target: timedelta
    warning_percent: int
    start_time: datetime
    state: ClockState = ClockState.RUNNING
    accumulated: timedelta = timedelta(0)
    running_since: datetime | None = None
    warned_time: datetime | None = None
    breached_time: datetime | None = None
    achieved_time: datetime | None = None
    # The due time the breach was measured against (later pauses cannot move it any more).
    breach_due_time: datetime | None = None

    @property
    def is_measuring(self) -> bool:
        return self.state in (ClockState.RUNNING, ClockState.PAUSED)

    @property
    def warning_after(self) -> timedelta:
        """Business time after which the warning is due."""
        return self.target * self.warning_percent / 100

    def elapsed(self, calendar: BusinessCalendar, now: datetime) -> timedelta:
        if self.state is ClockState.RUNNING and self.running_since is not None:
            return self.accumulated + business_time_between(
                calendar, self.running_since, max(now, self.running_since)
            )
        return self.accumulated

    def remaining(self, calendar: BusinessCalendar, now: datetime) -> timedelta:
        """Negative once the target is exceeded; frozen while paused or finished."""
        return self.target - self.elapsed(calendar, now)

    def moment_of(self, calendar: BusinessCalendar, business_time: timedelta, now: datetime) -> datetime:
        """When `business_time` of this clock will have elapsed (or when it did, if already past).

        A paused clock answers as if it resumed now; a past moment of a running clock is
        found by walking its current segment (earlier segments are summarised by
        `accumulated`, so a moment inside them is reported as the segment start).
        """
        if self.state is ClockState.RUNNING and self.running_since is not None:
            origin = self.running_since
        elif self.state is ClockState.PAUSED:
            origin = now
        else:
            origin = self.achieved_time or now
        left = business_time - self.accumulated
        if left <= timedelta(0):
            return origin
        return add_business_time(calendar, origin, left)

    def due_time(self, calendar: BusinessCalendar, now: datetime) -> datetime:
        return self.breach_due_time or self.moment_of(calendar, self.target, now)

    def warning_time(self, calendar: BusinessCalendar, now: datetime) -> datetime:
        return self.warned_time or self.moment_of(calendar, self.warning_after, now)


def start_clock(metric: SlaMetric, cycle: int, policy: SlaPolicy, at: datetime) -> SlaClock:
    return SlaClock(
        metric=metric,
        cycle=cycle,
        target=policy.targets[metric],
        warning_percent=effective_warning_percent(policy.warning_percent),
        start_time=at,
        running_since=at,
    )


def paused(clock: SlaClock, calendar: BusinessCalendar, now: datetime) -> SlaClock:
    if clock.state is not ClockState.RUNNING:
        return clock
    return replace(
        clock, state=ClockState.PAUSED, accumulated=clock.elapsed(calendar, now), running_since=None
    )


def resumed(clock: SlaClock, now: datetime) -> SlaClock:
    if clock.state is not ClockState.PAUSED:
        return clock
    return replace(clock, state=ClockState.RUNNING, running_since=now)


def finished(clock: SlaClock, calendar: BusinessCalendar, now: datetime, state: ClockState) -> SlaClock:
    """ACHIEVED (target met, maybe late) or STOPPED (no longer measured)."""
    if not clock.is_measuring:
        return clock
    return replace(
        clock, state=state, accumulated=clock.elapsed(calendar, now), running_since=None, achieved_time=now
    )


def reopened(clock: SlaClock, now: datetime) -> SlaClock:
    """A finished resolution clock runs again, its elapsed business time kept."""
    if clock.is_measuring:
        return clock
    return replace(clock, state=ClockState.RUNNING, running_since=now, achieved_time=None)


def retargeted(clock: SlaClock, policy: SlaPolicy) -> SlaClock:
    return replace(
        clock,
        target=policy.targets[clock.metric],
        warning_percent=effective_warning_percent(policy.warning_percent),
    )


@dataclass(frozen=True)
class Response:
    """An agent's public reply met a response clock after this much business time."""

    metric: SlaMetric
    business_time: timedelta


@dataclass(frozen=True)
class Reconciled:
    clocks: dict[SlaMetric, SlaClock]
    response: Response | None = None


def reconcile(
    clocks: Mapping[SlaMetric, SlaClock],
    ticket: Ticket,
    policy: SlaPolicy | None,
    calendar: BusinessCalendar | None,
    *,
    event: str,
    now: datetime,
) -> Reconciled:
    """The clocks after `event` on the ticket (already in its new state) under `policy`."""
    if policy is None or calendar is None:
        return Reconciled({})
    result = {metric: clock for metric, clock in clocks.items() if metric in policy.targets}
    result = {metric: retargeted(clock, policy) for metric, clock in result.items()}
    _start_missing(result, ticket, policy, calendar, now)
    response = None
    if event == "agent_reply":
        for metric in (SlaMetric.FIRST_RESPONSE, SlaMetric.NEXT_RESPONSE):
            clock = result.get(metric)
            if clock is not None and clock.is_measuring:
                response = Response(metric, clock.elapsed(calendar, now))
                result[metric] = finished(clock, calendar, now, ClockState.ACHIEVED)
                break
    elif event in ("customer_reply", "reopened") and SlaMetric.NEXT_RESPONSE in policy.targets:
        first = result.get(SlaMetric.FIRST_RESPONSE)
        awaiting_first = first is not None and first.is_measuring
        current = result.get(SlaMetric.NEXT_RESPONSE)
        if not awaiting_first and (event == "reopened" or current is None or not current.is_measuring):
            cycle = current.cycle + 1 if current is not None else 1
            result[SlaMetric.NEXT_RESPONSE] = start_clock(SlaMetric.NEXT_RESPONSE, cycle, policy, now)
    if event == "reopened" and SlaMetric.RESOLUTION in result:
        result[SlaMetric.RESOLUTION] = reopened(result[SlaMetric.RESOLUTION], now)
    for metric, clock in list(result.items()):
        result[metric] = _follow_status(clock, ticket.status, calendar, now)
    return Reconciled(result, response)


def _start_missing(
    clocks: dict[SlaMetric, SlaClock],
    ticket: Ticket,
    policy: SlaPolicy,
    calendar: BusinessCalendar,
    now: datetime,
) -> None:
    """Clocks measured from creation start then, even when the policy matched only later."""
    if SlaMetric.FIRST_RESPONSE in policy.targets and SlaMetric.FIRST_RESPONSE not in clocks:
        clock = start_clock(SlaMetric.FIRST_RESPONSE, 1, policy, ticket.create_time)
        if ticket.first_response_time is not None:
            clock = finished(clock, calendar, ticket.first_response_time, ClockState.ACHIEVED)
        clocks[SlaMetric.FIRST_RESPONSE] = clock
    if SlaMetric.RESOLUTION in policy.targets and SlaMetric.RESOLUTION not in clocks:
        clock = start_clock(SlaMetric.RESOLUTION, 1, policy, ticket.create_time)
        if ticket.resolve_time is not None:
            clock = finished(clock, calendar, ticket.resolve_time, ClockState.ACHIEVED)
        clocks[SlaMetric.RESOLUTION] = clock


def _follow_status(
    clock: SlaClock, status: TicketStatus, calendar: BusinessCalendar, now: datetime
) -> SlaClock:
    if status is TicketStatus.PENDING:
        return paused(clock, calendar, now)
    if status in (TicketStatus.NEW, TicketStatus.OPEN):
        return resumed(clock, now)
    # RESOLVED / CLOSED: resolution is met; a response still awaited is no longer measured.
    if clock.metric is SlaMetric.RESOLUTION:
        return finished(clock, calendar, now, ClockState.ACHIEVED)
    return finished(clock, calendar, now, ClockState.STOPPED)


@dataclass(frozen=True)
class TimerPlan:
    """When the warning and breach of a clock are due (None: nothing to fire)."""

    warning_at: datetime | None
    breach_at: datetime | None


def timer_plan(clock: SlaClock, calendar: BusinessCalendar, now: datetime) -> TimerPlan:
    if clock.state is not ClockState.RUNNING or clock.breached_time is not None:
        return TimerPlan(None, None)
    breach_at = max(clock.moment_of(calendar, clock.target, now), now)
    warning_at = None
    if clock.warned_time is None:
        warning_at = max(clock.moment_of(calendar, clock.warning_after, now), now)
    return TimerPlan(warning_at, breach_at)


def warning_due(clock: SlaClock, calendar: BusinessCalendar, now: datetime) -> bool:
    return (
        clock.state is ClockState.RUNNING
        and clock.warned_time is None
        and clock.breached_time is None
        and clock.elapsed(calendar, now) >= clock.warning_after
    )


def breach_due(clock: SlaClock, calendar: BusinessCalendar, now: datetime) -> bool:
    return (
        clock.state is ClockState.RUNNING
        and clock.breached_time is None
        and clock.elapsed(calendar, now) >= clock.target
    )


def warned(clock: SlaClock, now: datetime) -> SlaClock:
    return replace(clock, warned_time=now)


def breached(clock: SlaClock, calendar: BusinessCalendar, now: datetime) -> SlaClock:
    # A breach without an earlier warning (a late worker) counts as warned: no warning after it.
    return replace(
        clock,
        breached_time=now,
        breach_due_time=clock.moment_of(calendar, clock.target, now),
        warned_time=clock.warned_time or now,
    )


def rebased(clock: SlaClock, calendar: BusinessCalendar, now: datetime) -> SlaClock:
    """The running segment closed at `now` under `calendar` (before another calendar applies)."""
    if clock.state is not ClockState.RUNNING:
        return clock
    return replace(clock, accumulated=clock.elapsed(calendar, now), running_since=now)
