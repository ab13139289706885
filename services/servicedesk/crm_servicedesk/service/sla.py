"""The SLA clocks of tickets: recomputed in the unit of work of every change that matters.

`recompute` matches the policy again (a change of priority, type, channel or customer tier
may select another one), moves the clocks as the change demands (domain/sla.reconcile) and
re-plans their durable warning and breach timers: one (kind, key) row per clock cycle, so
rescheduling simply moves the row and a stale timer is replaced rather than left behind.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from crm_servicedesk.adapters.sla_repository import (
    CalendarRepository,
    ClockRepository,
    PolicyRepository,
    StoredClock,
)
from crm_servicedesk.domain import sla as rules
from crm_servicedesk.domain.business_time import BusinessCalendar
from crm_servicedesk.domain.sla import SlaClock, SlaMetric
from crm_servicedesk.domain.tickets import Ticket
from crm_shared import timers

log = logging.getLogger(__name__)

WARNING_TIMER = "servicedesk.sla.warning"
BREACH_TIMER = "servicedesk.sla.breach"


def timer_key(ticket_id: str, metric: SlaMetric, cycle: int) -> str:
    return f"{ticket_id}:{metric.value}:{cycle}"


def parse_timer_key(key: str) -> tuple[str, SlaMetric, int]:
    ticket_id, metric, cycle = key.split(":")
    return ticket_id, SlaMetric(metric), int(cycle)


def policy_name(policy_id: str) -> str:
    return f"slaPolicies/{policy_id}" if policy_id else ""


@dataclass(frozen=True)
class SlaChange:
    """What a recompute did: the policy now in effect and, for an agent's reply, the target it met."""

    policy: str  # "slaPolicies/{id}", "" when none applies
    responded_metric: SlaMetric | None = None
    business_time_to_respond: timedelta | None = None


@dataclass(frozen=True)
class TicketSlaView:
    """What GetTicket shows of a ticket's SLA (remaining time is computed at display time)."""

    policy: str
    calendar: str
    business_calendar: BusinessCalendar
    clocks: tuple[SlaClock, ...]
    escalation_count: int = 0


async def recompute(uow, ticket: Ticket, *, event: str, actor: str = "") -> SlaChange | None:
    """Re-evaluate the ticket's SLA after `event` (see domain/sla.EVENTS); None when no policy applies."""
    if event not in rules.EVENTS:
        raise ValueError(f"unknown SLA event {event!r}")
    session = uow.session
    clock_repo = ClockRepository(session)
    existing = await clock_repo.for_ticket(ticket.id, lock=True)
    policy = rules.match_policy(await PolicyRepository(session).active(), ticket)
    calendars = await CalendarRepository(session).get_many(
        [stored.calendar_id for stored in existing.values()] + ([policy.calendar_id] if policy else [])
    )
    stored_calendar = calendars.get(policy.calendar_id) if policy else None
    if policy is None or stored_calendar is None:
        for metric, stored in existing.items():
            await _cancel_timers(uow, ticket.id, metric, stored.clock.cycle)
            await clock_repo.remove(ticket.id, metric)
        return None
    calendar = stored_calendar.calendar
    clocks = {}
    for metric, stored in existing.items():
        previous = calendars.get(stored.calendar_id)
        # Time already run is measured in the calendar it ran under, before a new calendar applies.
        clocks[metric] = (
            rules.rebased(stored.clock, previous.calendar, uow.now)
            if previous is not None and stored.calendar_id != policy.calendar_id
            else stored.clock
        )
    reconciled = rules.reconcile(clocks, ticket, policy, calendar, event=event, now=uow.now)
    for metric, stored in existing.items():
        replacement = reconciled.clocks.get(metric)
        if replacement is None or replacement.cycle != stored.clock.cycle:
            await _cancel_timers(uow, ticket.id, metric, stored.clock.cycle)
        if replacement is None:
            await clock_repo.remove(ticket.id, metric)
    for clock in reconciled.clocks.values():
        await clock_repo.put(ticket.id, StoredClock(clock, policy.id, policy.calendar_id))
        await plan_timers(uow, ticket.id, clock, calendar)
    response = reconciled.response
    return SlaChange(
        policy=policy.name,
        responded_metric=response.metric if response else None,
        business_time_to_respond=response.business_time if response else None,
    )


async def plan_timers(uow, ticket_id: str, clock: SlaClock, calendar: BusinessCalendar) -> None:
    """Schedule (or move, or cancel) the warning and breach timers of one clock cycle."""
    plan = rules.timer_plan(clock, calendar, uow.now)
    key = timer_key(ticket_id, clock.metric, clock.cycle)
    for kind, moment in ((WARNING_TIMER, plan.warning_at), (BREACH_TIMER, plan.breach_at)):
        if moment is None:
            await timers.cancel(uow, kind, key)
        else:
            await timers.schedule(uow, kind, key, moment)


async def _cancel_timers(uow, ticket_id: str, metric: SlaMetric, cycle: int) -> None:
    key = timer_key(ticket_id, metric, cycle)
    await timers.cancel(uow, WARNING_TIMER, key)
    await timers.cancel(uow, BREACH_TIMER, key)


async def current_policy(session, ticket_id: str) -> str:
    """ "slaPolicies/{id}" in effect for the ticket ("" when none), for event snapshots."""
    clocks = await ClockRepository(session).for_ticket(ticket_id)
    return next((policy_name(stored.policy_id) for stored in clocks.values()), "")


async def sla_views(session, ticket_ids: Sequence[str]) -> dict[str, TicketSlaView]:
    """ticket id -> its SLA view; tickets without a policy are absent."""
    clocks_by_ticket = await ClockRepository(session).for_tickets(list(ticket_ids))
    calendars = await CalendarRepository(session).get_many(
        stored.calendar_id for clocks in clocks_by_ticket.values() for stored in clocks.values()
    )
    escalations = await ClockRepository(session).escalation_counts(list(ticket_ids))
    views: dict[str, TicketSlaView] = {}
    for ticket_id, clocks in clocks_by_ticket.items():
        if not clocks:
            continue
        first = next(iter(clocks.values()))
        stored_calendar = calendars.get(first.calendar_id)
        if stored_calendar is None:
            continue
        ordered = sorted(
            (stored.clock for stored in clocks.values()), key=lambda c: list(SlaMetric).index(c.metric)
        )
        views[ticket_id] = TicketSlaView(
            policy=policy_name(first.policy_id),
            calendar=stored_calendar.name,
            business_calendar=stored_calendar.calendar,
            clocks=tuple(ordered),
            escalation_count=escalations.get(ticket_id, 0),
        )
    return views
