"""SLA warnings, breaches and escalations (durable timers scheduled by service/sla.recompute).

A timer only names (ticket, metric, cycle); when it fires the clock decides: a clock in
another cycle, paused, finished, already warned/breached, or not yet at its moment (a stale
timer) does nothing beyond re-planning.
"""

from __future__ import annotations

from crm_servicedesk.adapters.sla_repository import CalendarRepository, ClockRepository, StoredClock
from crm_servicedesk.adapters.ticket_repository import TicketRepository
from crm_servicedesk.domain import sla as rules
from crm_servicedesk.service import sla
from crm_servicedesk.service.escalation import escalate
from crm_servicedesk.service.sla_events import emit_breached, emit_warning
from crm_servicedesk.service.sla_metrics import count_breach_on_commit, count_warning_on_commit, sla_counters


async def _load(uow, key: str):
    """(ticket, stored clock, calendar) of a timer key, or None when the clock is gone or in another cycle."""
    ticket_id, metric, cycle = sla.parse_timer_key(key)
    ticket = await TicketRepository(uow.session).get(ticket_id, lock=True)
    if ticket is None:
        return None
    stored = (await ClockRepository(uow.session).for_ticket(ticket_id, lock=True)).get(metric)
    if stored is None or stored.clock.cycle != cycle:
        return None
    calendar = await CalendarRepository(uow.session).get(stored.calendar_id)
    if calendar is None:
        return None
    return ticket, stored, calendar.calendar


async def fire_warning(uow, key: str) -> None:
    loaded = await _load(uow, key)
    if loaded is None:
        return
    ticket, stored, calendar = loaded
    clock = stored.clock
    if not rules.warning_due(clock, calendar, uow.now):
        await sla.plan_timers(uow, ticket.id, clock, calendar)
        return
    warned = rules.warned(clock, uow.now)
    await ClockRepository(uow.session).put(
        ticket.id, StoredClock(warned, stored.policy_id, stored.calendar_id)
    )
    emit_warning(
        uow,
        ticket,
        policy=sla.policy_name(stored.policy_id),
        metric=clock.metric,
        due_time=clock.due_time(calendar, uow.now),
    )
    count_warning_on_commit(uow, ticket, clock.metric)


async def fire_breach(uow, key: str) -> None:
    loaded = await _load(uow, key)
    if loaded is None:
        return
    ticket, stored, calendar = loaded
    clock = stored.clock
    if not rules.breach_due(clock, calendar, uow.now):
        await sla.plan_timers(uow, ticket.id, clock, calendar)
        return
    breached = rules.breached(clock, calendar, uow.now)
    await ClockRepository(uow.session).put(
        ticket.id, StoredClock(breached, stored.policy_id, stored.calendar_id)
    )
    # The warning is moot once breached.
    await sla.plan_timers(uow, ticket.id, breached, calendar)
    emit_breached(
        uow,
        ticket,
        policy=sla.policy_name(stored.policy_id),
        metric=clock.metric,
        due_time=breached.breach_due_time or uow.now,
        breach_time=uow.now,
    )
    count_breach_on_commit(uow, ticket, clock.metric)
    await escalate(uow, ticket, policy_id=stored.policy_id, metric=clock.metric, cycle=clock.cycle)


def timer_handlers(app) -> dict:
    """kind -> async handler(uow, timer) for the SLA timers."""
    # Register the counters now, so /metrics lists them (at zero) before the first breach.
    sla_counters()

    async def warning(uow, timer) -> None:
        await fire_warning(uow, timer.key)

    async def breach(uow, timer) -> None:
        await fire_breach(uow, timer.key)

    return {sla.WARNING_TIMER: warning, sla.BREACH_TIMER: breach}
