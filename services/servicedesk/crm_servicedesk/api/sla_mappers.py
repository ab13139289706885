"""Protobuf <-> domain for business calendars, SLA policies and a ticket's SLA view."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from google.protobuf import duration_pb2
from google.type import date_pb2

from crm.servicedesk.v1 import sla_service_pb2 as pb
from crm.servicedesk.v1 import ticket_service_pb2
from crm_servicedesk.adapters.sla_repository import StoredCalendar
from crm_servicedesk.domain.business_time import WorkingRange
from crm_servicedesk.domain.sla import ClockState, EscalationAction, SlaCondition, SlaMetric, SlaPolicy
from crm_servicedesk.service.sla import TicketSlaView
from crm_servicedesk.service.sla_admin import CalendarInput, PolicyInput
from crm_servicedesk.service.sla_events import KIND_FROM_PB, KIND_TO_PB, METRIC_FROM_PB, METRIC_TO_PB
from crm_servicedesk.service.ticket_events import (
    CHANNEL_TO_PB,
    PRIORITY_TO_PB,
    TYPE_TO_PB,
    timestamp,
)
from crm_shared.aip.etag import etag_for
from crm_shared.errors import InvalidArgument

PRIORITY_FROM_PB = {value: priority for priority, value in PRIORITY_TO_PB.items()}
TYPE_FROM_PB = {value: kind for kind, value in TYPE_TO_PB.items()}
CHANNEL_FROM_PB = {value: channel for channel, value in CHANNEL_TO_PB.items()}
TARGET_FIELDS = {
    SlaMetric.FIRST_RESPONSE: "first_response",
    SlaMetric.NEXT_RESPONSE: "next_response",
    SlaMetric.RESOLUTION: "resolution",
}


def resource_id(name: str, collection: str, *, field: str = "name") -> str:
    """The id in "{collection}/{id}" (the request validator has checked the pattern when set)."""
    if not name.startswith(f"{collection}/"):
        raise InvalidArgument.for_field(field, f"is required: {collection}/{{id}}")
    return name.removeprefix(f"{collection}/")


def duration_pb(value: timedelta) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.FromTimedelta(value)
    return message


def _date_from_pb(message: date_pb2.Date, *, field: str) -> date:
    try:
        return date(message.year, message.month, message.day)
    except ValueError:
        raise InvalidArgument.for_field(field, "must be a full calendar date (year, month and day)") from None


def calendar_input(message: pb.BusinessCalendar) -> CalendarInput:
    return CalendarInput(
        display_name=message.display_name,
        time_zone=message.time_zone,
        working_hours=tuple(
            WorkingRange.parse(int(item.day), item.start or "00:00", item.end or "00:00")
            for item in message.working_hours
        ),
        holidays=frozenset(
            _date_from_pb(day, field=f"business_calendar.holidays[{index}]")
            for index, day in enumerate(message.holidays)
        ),
    )


def calendar_to_pb(stored: StoredCalendar) -> pb.BusinessCalendar:
    calendar = stored.calendar
    return pb.BusinessCalendar(
        name=stored.name,
        display_name=stored.display_name,
        time_zone=calendar.time_zone,
        working_hours=[
            pb.WorkingHours(day=r.weekday, start=r.start_text, end=r.end_text)
            for r in sorted(calendar.working_hours)
        ],
        holidays=[date_pb2.Date(year=d.year, month=d.month, day=d.day) for d in sorted(calendar.holidays)],
        create_time=timestamp(stored.create_time),
        update_time=timestamp(stored.update_time),
        etag=etag_for(stored.id, stored.row_version),
    )


def policy_input(message: pb.SlaPolicy) -> PolicyInput:
    targets = {
        metric: getattr(message.targets, field).ToTimedelta()
        for metric, field in TARGET_FIELDS.items()
        if message.targets.HasField(field)
    }
    condition = message.condition
    return PolicyInput(
        display_name=message.display_name,
        priority=message.priority,
        active=message.active,
        condition=SlaCondition(
            priorities=tuple(PRIORITY_FROM_PB[p] for p in condition.priorities if p in PRIORITY_FROM_PB),
            customer_tiers=tuple(tier.strip() for tier in condition.customer_tiers if tier.strip()),
            types=tuple(TYPE_FROM_PB[t] for t in condition.types if t in TYPE_FROM_PB),
            channels=tuple(CHANNEL_FROM_PB[c] for c in condition.channels if c in CHANNEL_FROM_PB),
        ),
        calendar_id=message.calendar.removeprefix("businessCalendars/") if message.calendar else "",
        targets=targets,
        warning_percent=message.warning_percent,
        escalations=tuple(
            EscalationAction(
                metric=METRIC_FROM_PB[action.metric],
                kind=KIND_FROM_PB[action.kind],
                team=action.team.strip(),
                assignee=action.assignee.strip(),
                notify=tuple(action.notify),
            )
            for action in message.escalations
            if action.metric in METRIC_FROM_PB and action.kind in KIND_FROM_PB
        ),
    )


def policy_to_pb(policy: SlaPolicy) -> pb.SlaPolicy:
    condition = policy.condition
    targets = pb.SlaTargets()
    for metric, target in policy.targets.items():
        getattr(targets, TARGET_FIELDS[metric]).CopyFrom(duration_pb(target))
    return pb.SlaPolicy(
        name=policy.name,
        display_name=policy.display_name,
        priority=policy.priority,
        active=policy.active,
        condition=pb.SlaCondition(
            priorities=[PRIORITY_TO_PB[p] for p in condition.priorities],
            customer_tiers=list(condition.customer_tiers),
            types=[TYPE_TO_PB[t] for t in condition.types],
            channels=[CHANNEL_TO_PB[c] for c in condition.channels],
        ),
        calendar=f"businessCalendars/{policy.calendar_id}",
        targets=targets,
        warning_percent=policy.warning_percent,
        escalations=[
            pb.EscalationAction(
                metric=METRIC_TO_PB[a.metric],
                kind=KIND_TO_PB[a.kind],
                team=a.team,
                assignee=a.assignee,
                notify=list(a.notify),
            )
            for a in policy.escalations
        ],
        create_time=timestamp(policy.create_time),
        update_time=timestamp(policy.update_time),
        etag=etag_for(policy.id, policy.row_version),
    )


def ticket_sla_to_pb(view: TicketSlaView, now: datetime) -> ticket_service_pb2.TicketSla:
    """The SLA of a ticket as GetTicket shows it at `now` (remaining frozen while paused)."""
    calendar = view.business_calendar
    targets = []
    for clock in view.clocks:
        remaining = clock.remaining(calendar, now)
        targets.append(
            ticket_service_pb2.SlaTarget(
                metric=METRIC_TO_PB[clock.metric],
                target=duration_pb(clock.target),
                due_time=timestamp(clock.due_time(calendar, now)),
                remaining=duration_pb(remaining),
                warning_time=timestamp(clock.warning_time(calendar, now)),
                # Past due counts as breached even before the breach timer has run.
                warned=clock.warned_time is not None or clock.target - remaining >= clock.warning_after,
                breached=clock.breached_time is not None or remaining < timedelta(0),
                paused=clock.state is ClockState.PAUSED,
                achieved_time=timestamp(clock.achieved_time) if clock.state is ClockState.ACHIEVED else None,
            )
        )
    return ticket_service_pb2.TicketSla(
        policy=view.policy, calendar=view.calendar, targets=targets, escalation_count=view.escalation_count
    )
