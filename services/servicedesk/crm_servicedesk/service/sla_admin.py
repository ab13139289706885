"""Use cases for business calendars and SLA policies (admins and support managers) and AddBusinessTime.

Policy changes reach tickets when they are next recomputed (any change that matters), as the
API documents: editing a policy never rewrites running clocks in bulk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from crm_servicedesk.adapters.sla_repository import CalendarRepository, PolicyRepository, StoredCalendar
from crm_servicedesk.adapters.sla_tables import sla_policies
from crm_servicedesk.domain.business_time import (
    BusinessCalendar,
    CalendarError,
    WorkingRange,
    add_business_time,
    validate_calendar,
)
from crm_servicedesk.domain.sla import (
    EscalationAction,
    EscalationKind,
    SlaCondition,
    SlaMetric,
    SlaPolicy,
    effective_warning_percent,
)
from crm_shared.aip.etag import check_etag
from crm_shared.aip.fieldmask import resolve_update_mask
from crm_shared.aip.filtering import FilterField, FilterSchema
from crm_shared.aip.paging import Page, parse_list_request
from crm_shared.errors import FailedPrecondition, InvalidArgument, NotFound, Violations
from crm_shared.ids import new_id
from crm_shared.principal import Principal

CALENDAR_FIELDS = ("display_name", "time_zone", "working_hours", "holidays")
POLICY_FIELDS = (
    "display_name",
    "priority",
    "active",
    "condition",
    "calendar",
    "targets",
    "warning_percent",
    "escalations",
)
OUTPUT_ONLY = ("name", "create_time", "update_time", "etag")
# Bounds that keep the calendar walk short (a day at a time) and catch unit mistakes.
MAX_TARGET = timedelta(days=365)
MAX_PREVIEW = timedelta(days=3660)

POLICY_FILTERS = FilterSchema(
    {
        "active": FilterField.boolean(sla_policies.c.active),
        "calendar": FilterField.custom(
            "= !=",
            lambda op, value: (
                sla_policies.c.calendar_id == value if op == "=" else sla_policies.c.calendar_id != value
            ),
            convert=lambda value, quoted: value.removeprefix("businessCalendars/"),
        ),
    }
)


@dataclass(frozen=True)
class CalendarInput:
    display_name: str = ""
    time_zone: str = ""
    working_hours: tuple[WorkingRange, ...] = ()
    holidays: frozenset[date] = frozenset()


@dataclass(frozen=True)
class PolicyInput:
    display_name: str = ""
    priority: int = 0
    active: bool = False
    condition: SlaCondition = field(default_factory=SlaCondition)
    calendar_id: str = ""
    targets: dict[SlaMetric, timedelta] = field(default_factory=dict)
    warning_percent: int = 0
    escalations: tuple[EscalationAction, ...] = ()


def calendar_not_found(calendar_id: str) -> NotFound:
    name = f"businessCalendars/{calendar_id}"
    return NotFound(f"{name} not found", reason="BUSINESS_CALENDAR_NOT_FOUND", metadata={"resource": name})


def policy_not_found(policy_id: str) -> NotFound:
    name = f"slaPolicies/{policy_id}"
    return NotFound(f"{name} not found", reason="SLA_POLICY_NOT_FOUND", metadata={"resource": name})


# --- business calendars ---------------------------------------------------------------------------


def _checked_calendar(data: CalendarInput) -> BusinessCalendar:
    calendar = BusinessCalendar(
        time_zone=data.time_zone.strip(),
        working_hours=tuple(sorted(data.working_hours)),
        holidays=data.holidays,
    )
    try:
        validate_calendar(calendar)
    except CalendarError as error:
        raise InvalidArgument.for_field(f"business_calendar.{error.field_path}", str(error)) from None
    return calendar


async def get_calendar(session: AsyncSession, calendar_id: str) -> StoredCalendar:
    stored = await CalendarRepository(session).get(calendar_id)
    if stored is None:
        raise calendar_not_found(calendar_id)
    return stored


async def list_calendars(
    session: AsyncSession, deps, principal: Principal, *, page_size: int, page_token: str
) -> Page:
    request = parse_list_request(
        deps.page_tokens,
        collection="businessCalendars",
        caller=principal.subject,
        page_size=page_size,
        page_token=page_token,
        orderable=("create_time",),
        default_order="create_time",
    )
    rows = await CalendarRepository(session).list_page(limit=request.limit + 1, after=request.after)
    return request.page(rows, deps.page_tokens)


async def create_calendar(uow, data: CalendarInput) -> StoredCalendar:
    stored = StoredCalendar(
        id=new_id(),
        display_name=data.display_name.strip(),
        calendar=_checked_calendar(data),
        create_time=uow.now,
        update_time=uow.now,
    )
    await CalendarRepository(uow.session).add(stored)
    uow.audit("created", stored.name, ["display_name", "time_zone", "working_hours", "holidays"])
    return stored


async def update_calendar(
    uow, calendar_id: str, data: CalendarInput, mask: Sequence[str], etag: str
) -> StoredCalendar:
    fields = resolve_update_mask(mask, writable=CALENDAR_FIELDS, output_only=OUTPUT_ONLY)
    repo = CalendarRepository(uow.session)
    current = await repo.get(calendar_id)
    if current is None:
        raise calendar_not_found(calendar_id)
    check_etag(etag, current.id, current.row_version, resource=current.name)
    merged = CalendarInput(
        display_name=data.display_name if "display_name" in fields else current.display_name,
        time_zone=data.time_zone if "time_zone" in fields else current.calendar.time_zone,
        working_hours=data.working_hours if "working_hours" in fields else current.calendar.working_hours,
        holidays=data.holidays if "holidays" in fields else current.calendar.holidays,
    )
    updated = replace(
        current,
        display_name=merged.display_name.strip(),
        calendar=_checked_calendar(merged),
        update_time=uow.now,
        row_version=current.row_version + 1,
    )
    await repo.save(updated, current.row_version)
    uow.audit("updated", updated.name, sorted(fields))
    return updated


async def delete_calendar(uow, calendar_id: str, etag: str) -> None:
    repo = CalendarRepository(uow.session)
    current = await repo.get(calendar_id)
    if current is None:
        raise calendar_not_found(calendar_id)
    check_etag(etag, current.id, current.row_version, resource=current.name)
    if await PolicyRepository(uow.session).uses_calendar(calendar_id):
        raise FailedPrecondition(
            f"{current.name} is used by an SLA policy; change or delete the policy first",
            reason="BUSINESS_CALENDAR_IN_USE",
            metadata={"resource": current.name},
        )
    await repo.delete(calendar_id)
    uow.audit("deleted", current.name, [])


async def preview_due_time(
    session: AsyncSession, calendar_id: str, start: datetime, duration: timedelta
) -> datetime:
    """AddBusinessTime: when `duration` of business time after `start` ends in the calendar."""
    if not timedelta(0) <= duration <= MAX_PREVIEW:
        raise InvalidArgument.for_field("duration", f"must be 0 to {MAX_PREVIEW.days} days")
    stored = await get_calendar(session, calendar_id)
    return add_business_time(stored.calendar, start, duration)


# --- SLA policies ---------------------------------------------------------------------------------


async def _checked_policy(session: AsyncSession, policy: SlaPolicy) -> SlaPolicy:
    violations = Violations()
    path = "sla_policy"
    if not policy.calendar_id:
        violations.add(f"{path}.calendar", "is required: businessCalendars/{calendar}")
    elif await CalendarRepository(session).get(policy.calendar_id) is None:
        violations.add(f"{path}.calendar", f"businessCalendars/{policy.calendar_id} does not exist")
    if not policy.targets:
        violations.add(
            f"{path}.targets", "set at least one target (first_response, next_response, resolution)"
        )
    for metric, target in policy.targets.items():
        if not timedelta(0) < target <= MAX_TARGET:
            violations.add(
                f"{path}.targets.{metric.value}", f"must be positive and at most {MAX_TARGET.days} days"
            )
    if not 0 <= policy.warning_percent <= 99:
        violations.add(f"{path}.warning_percent", "must be 0 (default 80) to 99")
    if not 0 <= policy.priority <= 10000:
        violations.add(f"{path}.priority", "must be 0 to 10000")
    for index, action in enumerate(policy.escalations):
        action_path = f"{path}.escalations[{index}]"
        if action.kind is EscalationKind.REASSIGN and not (action.team or action.assignee):
            violations.add(action_path, "REASSIGN needs a team or an assignee")
        if action.kind is EscalationKind.NOTIFY and not action.notify:
            violations.add(f"{action_path}.notify", "NOTIFY needs at least one recipient")
    violations.raise_if_any("the SLA policy has invalid fields")
    return policy


async def get_policy(session: AsyncSession, policy_id: str) -> SlaPolicy:
    policy = await PolicyRepository(session).get(policy_id)
    if policy is None:
        raise policy_not_found(policy_id)
    return policy


async def list_policies(
    session: AsyncSession, deps, principal: Principal, *, page_size: int, page_token: str, filter_text: str
) -> Page:
    request = parse_list_request(
        deps.page_tokens,
        collection="slaPolicies",
        caller=principal.subject,
        page_size=page_size,
        page_token=page_token,
        filter_text=filter_text,
        filters=POLICY_FILTERS,
        orderable=("priority", "create_time"),
        default_order="priority,create_time",
    )
    rows = await PolicyRepository(session).list_page(
        where=request.where, limit=request.limit + 1, after=request.after
    )
    return request.page(rows, deps.page_tokens)


async def create_policy(uow, data: PolicyInput) -> SlaPolicy:
    policy = SlaPolicy(
        id=new_id(),
        display_name=data.display_name.strip(),
        priority=data.priority,
        active=data.active,
        condition=data.condition,
        calendar_id=data.calendar_id,
        targets=dict(data.targets),
        warning_percent=effective_warning_percent(data.warning_percent),
        escalations=data.escalations,
        create_time=uow.now,
        update_time=uow.now,
    )
    await _checked_policy(uow.session, policy)
    await PolicyRepository(uow.session).add(policy)
    uow.audit("created", policy.name, list(POLICY_FIELDS))
    return policy


async def update_policy(uow, policy_id: str, data: PolicyInput, mask: Sequence[str], etag: str) -> SlaPolicy:
    fields = resolve_update_mask(mask, writable=POLICY_FIELDS, output_only=OUTPUT_ONLY)
    repo = PolicyRepository(uow.session)
    current = await repo.get(policy_id)
    if current is None:
        raise policy_not_found(policy_id)
    check_etag(etag, current.id, current.row_version, resource=current.name)
    attribute = {"calendar": "calendar_id"}
    changes = {attribute.get(name, name): getattr(data, attribute.get(name, name)) for name in fields}
    if "display_name" in changes:
        changes["display_name"] = data.display_name.strip()
    if "targets" in changes:
        changes["targets"] = dict(data.targets)
    if "warning_percent" in changes:
        changes["warning_percent"] = effective_warning_percent(data.warning_percent)
    updated = replace(current, **changes, update_time=uow.now, row_version=current.row_version + 1)
    await _checked_policy(uow.session, updated)
    await repo.save(updated, current.row_version)
    uow.audit("updated", updated.name, sorted(fields))
    return updated


async def delete_policy(uow, policy_id: str, etag: str) -> None:
    repo = PolicyRepository(uow.session)
    current = await repo.get(policy_id)
    if current is None:
        raise policy_not_found(policy_id)
    check_etag(etag, current.id, current.row_version, resource=current.name)
    await repo.delete(policy_id)
    uow.audit("deleted", current.name, [])
