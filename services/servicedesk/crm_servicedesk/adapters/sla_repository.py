"""Business calendars, SLA policies, ticket clocks and the escalation log in the database."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from crm_servicedesk.adapters.sla_tables import (
    business_calendars,
    sla_escalations,
    sla_policies,
    ticket_sla_clocks,
)
from crm_servicedesk.domain.business_time import BusinessCalendar, WorkingRange
from crm_servicedesk.domain.sla import (
    ClockState,
    EscalationAction,
    EscalationKind,
    SlaClock,
    SlaCondition,
    SlaMetric,
    SlaPolicy,
)
from crm_servicedesk.domain.tickets import TicketChannel, TicketPriority, TicketType
from crm_shared.aip.paging import SortKey, keyset_after, keyset_order
from crm_shared.errors import Aborted


def _micros(value: timedelta) -> int:
    return value // timedelta(microseconds=1)


def _duration(micros: int) -> timedelta:
    return timedelta(microseconds=int(micros))


# --- calendars ------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class StoredCalendar:
    """A calendar row: the pure calendar plus its identity and bookkeeping."""

    id: str
    display_name: str
    calendar: BusinessCalendar
    create_time: datetime
    update_time: datetime
    row_version: int = 1

    @property
    def name(self) -> str:
        return f"businessCalendars/{self.id}"


def _calendar_values(stored: StoredCalendar) -> dict[str, Any]:
    return {
        "id": stored.id,
        "display_name": stored.display_name,
        "time_zone": stored.calendar.time_zone,
        "working_hours": [[r.weekday, r.start_minute, r.end_minute] for r in stored.calendar.working_hours],
        "holidays": sorted(day.isoformat() for day in stored.calendar.holidays),
        "create_time": stored.create_time,
        "update_time": stored.update_time,
        "row_version": stored.row_version,
    }


def _calendar_from_row(row: Any) -> StoredCalendar:
    return StoredCalendar(
        id=row["id"],
        display_name=row["display_name"],
        calendar=BusinessCalendar(
            time_zone=row["time_zone"],
            working_hours=tuple(WorkingRange(int(d), int(s), int(e)) for d, s, e in row["working_hours"]),
            holidays=frozenset(date.fromisoformat(day) for day in row["holidays"]),
        ),
        create_time=row["create_time"],
        update_time=row["update_time"],
        row_version=row["row_version"],
    )


class CalendarRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, calendar_id: str) -> StoredCalendar | None:
        row = (
            (
                await self._session.execute(
                    sa.select(business_calendars).where(business_calendars.c.id == calendar_id)
                )
            )
            .mappings()
            .first()
        )
        return None if row is None else _calendar_from_row(row)

    async def get_many(self, calendar_ids: Iterable[str]) -> dict[str, StoredCalendar]:
        ids = sorted(set(calendar_ids))
        if not ids:
            return {}
        rows = (
            (
                await self._session.execute(
                    sa.select(business_calendars).where(business_calendars.c.id.in_(ids))
                )
            )
            .mappings()
            .all()
        )
        return {row["id"]: _calendar_from_row(row) for row in rows}

    async def add(self, stored: StoredCalendar) -> None:
        await self._session.execute(sa.insert(business_calendars).values(**_calendar_values(stored)))

    async def save(self, stored: StoredCalendar, expected_row_version: int) -> None:
        values = _calendar_values(stored)
        result = await self._session.execute(
            sa.update(business_calendars)
            .where(
                business_calendars.c.id == stored.id, business_calendars.c.row_version == expected_row_version
            )
            .values(**values)
        )
        if result.rowcount != 1:
            raise Aborted(f"{stored.name} changed concurrently; retry", reason="CONCURRENT_MODIFICATION")

    async def delete(self, calendar_id: str) -> None:
        await self._session.execute(
            sa.delete(business_calendars).where(business_calendars.c.id == calendar_id)
        )

    async def list_page(self, *, limit: int, after: Sequence[Any] | None) -> list[StoredCalendar]:
        keys = [SortKey(business_calendars.c.create_time, False), SortKey(business_calendars.c.id, False)]
        query = sa.select(business_calendars).order_by(*keyset_order(keys)).limit(limit)
        if after:
            query = query.where(keyset_after(keys, after))
        rows = (await self._session.execute(query)).mappings().all()
        return [_calendar_from_row(row) for row in rows]


# --- policies -------------------------------------------------------------------------------------


def _condition_to_json(condition: SlaCondition) -> dict[str, list[str]]:
    return {
        "priorities": [p.value for p in condition.priorities],
        "customer_tiers": list(condition.customer_tiers),
        "types": [t.value for t in condition.types],
        "channels": [c.value for c in condition.channels],
    }


def _condition_from_json(data: dict[str, Any]) -> SlaCondition:
    return SlaCondition(
        priorities=tuple(TicketPriority(p) for p in data.get("priorities", [])),
        customer_tiers=tuple(data.get("customer_tiers", [])),
        types=tuple(TicketType(t) for t in data.get("types", [])),
        channels=tuple(TicketChannel(c) for c in data.get("channels", [])),
    )


def _action_to_json(action: EscalationAction) -> dict[str, Any]:
    return {
        "metric": action.metric.value,
        "kind": action.kind.value,
        "team": action.team,
        "assignee": action.assignee,
        "notify": list(action.notify),
    }


def _action_from_json(data: dict[str, Any]) -> EscalationAction:
    return EscalationAction(
        metric=SlaMetric(data["metric"]),
        kind=EscalationKind(data["kind"]),
        team=data.get("team", ""),
        assignee=data.get("assignee", ""),
        notify=tuple(data.get("notify", [])),
    )


def _policy_values(policy: SlaPolicy) -> dict[str, Any]:
    return {
        "id": policy.id,
        "display_name": policy.display_name,
        "priority": policy.priority,
        "active": policy.active,
        "condition": _condition_to_json(policy.condition),
        "calendar_id": policy.calendar_id,
        "targets": {metric.value: _micros(target) for metric, target in policy.targets.items()},
        "warning_percent": policy.warning_percent,
        "escalations": [_action_to_json(action) for action in policy.escalations],
        "create_time": policy.create_time,
        "update_time": policy.update_time,
        "row_version": policy.row_version,
    }


def _policy_from_row(row: Any) -> SlaPolicy:
    return SlaPolicy(
        id=row["id"],
        display_name=row["display_name"],
        priority=row["priority"],
        active=bool(row["active"]),
        condition=_condition_from_json(row["condition"] or {}),
        calendar_id=row["calendar_id"],
        targets={SlaMetric(metric): _duration(micros) for metric, micros in (row["targets"] or {}).items()},
        warning_percent=row["warning_percent"],
        escalations=tuple(_action_from_json(item) for item in row["escalations"] or []),
        create_time=row["create_time"],
        update_time=row["update_time"],
        row_version=row["row_version"],
    )


class PolicyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, policy_id: str) -> SlaPolicy | None:
        row = (
            (await self._session.execute(sa.select(sla_policies).where(sla_policies.c.id == policy_id)))
            .mappings()
            .first()
        )
        return None if row is None else _policy_from_row(row)

    async def active(self) -> list[SlaPolicy]:
        """Active policies in matching order (priority, then creation)."""
        query = (
            sa.select(sla_policies)
            .where(sla_policies.c.active.is_(True))
            .order_by(sla_policies.c.priority, sla_policies.c.create_time, sla_policies.c.id)
        )
        return [_policy_from_row(row) for row in (await self._session.execute(query)).mappings().all()]

    async def uses_calendar(self, calendar_id: str) -> bool:
        query = sa.select(sla_policies.c.id).where(sla_policies.c.calendar_id == calendar_id).limit(1)
        return (await self._session.execute(query)).first() is not None

    async def add(self, policy: SlaPolicy) -> None:
        await self._session.execute(sa.insert(sla_policies).values(**_policy_values(policy)))

    async def save(self, policy: SlaPolicy, expected_row_version: int) -> None:
        result = await self._session.execute(
            sa.update(sla_policies)
            .where(sla_policies.c.id == policy.id, sla_policies.c.row_version == expected_row_version)
            .values(**_policy_values(policy))
        )
        if result.rowcount != 1:
            raise Aborted(f"{policy.name} changed concurrently; retry", reason="CONCURRENT_MODIFICATION")

    async def delete(self, policy_id: str) -> None:
        await self._session.execute(sa.delete(sla_policies).where(sla_policies.c.id == policy_id))

    async def list_page(
        self, *, where: sa.ColumnElement[bool] | None, limit: int, after: Sequence[Any] | None
    ) -> list[SlaPolicy]:
        keys = [
            SortKey(sla_policies.c.priority, False),
            SortKey(sla_policies.c.create_time, False),
            SortKey(sla_policies.c.id, False),
        ]
        query = sa.select(sla_policies).order_by(*keyset_order(keys)).limit(limit)
        if where is not None:
            query = query.where(where)
        if after:
            query = query.where(keyset_after(keys, after))
        return [_policy_from_row(row) for row in (await self._session.execute(query)).mappings().all()]


# --- clocks and escalations -----------------------------------------------------------------------


@dataclass(frozen=True)
class StoredClock:
    """A ticket's clock with the policy and calendar it is measured under."""

    clock: SlaClock
    policy_id: str
    calendar_id: str


def _clock_values(ticket_id: str, stored: StoredClock) -> dict[str, Any]:
    clock = stored.clock
    return {
        "ticket_id": ticket_id,
        "metric": clock.metric.value,
        "cycle": clock.cycle,
        "policy_id": stored.policy_id,
        "calendar_id": stored.calendar_id,
        "target_us": _micros(clock.target),
        "warning_percent": clock.warning_percent,
        "state": clock.state.value,
        "start_time": clock.start_time,
        "accumulated_us": _micros(clock.accumulated),
        "running_since": clock.running_since,
        "warned_time": clock.warned_time,
        "breached_time": clock.breached_time,
        "breach_due_time": clock.breach_due_time,
        "achieved_time": clock.achieved_time,
    }


def _clock_from_row(row: Any) -> StoredClock:
    clock = SlaClock(
        metric=SlaMetric(row["metric"]),
        cycle=row["cycle"],
        target=_duration(row["target_us"]),
        warning_percent=row["warning_percent"],
        start_time=row["start_time"],
        state=ClockState(row["state"]),
        accumulated=_duration(row["accumulated_us"]),
        running_since=row["running_since"],
        warned_time=row["warned_time"],
        breached_time=row["breached_time"],
        breach_due_time=row["breach_due_time"],
        achieved_time=row["achieved_time"],
    )
    return StoredClock(clock, row["policy_id"], row["calendar_id"])


def _insert_for(session: AsyncSession):
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


class ClockRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def for_ticket(self, ticket_id: str, *, lock: bool = False) -> dict[SlaMetric, StoredClock]:
        query = sa.select(ticket_sla_clocks).where(ticket_sla_clocks.c.ticket_id == ticket_id)
        if lock:
            query = query.with_for_update()
        rows = (await self._session.execute(query)).mappings().all()
        return {SlaMetric(row["metric"]): _clock_from_row(row) for row in rows}

    async def for_tickets(self, ticket_ids: Sequence[str]) -> dict[str, dict[SlaMetric, StoredClock]]:
        result: dict[str, dict[SlaMetric, StoredClock]] = {ticket_id: {} for ticket_id in ticket_ids}
        if not ticket_ids:
            return result
        query = sa.select(ticket_sla_clocks).where(ticket_sla_clocks.c.ticket_id.in_(list(ticket_ids)))
        for row in (await self._session.execute(query)).mappings().all():
            result[row["ticket_id"]][SlaMetric(row["metric"])] = _clock_from_row(row)
        return result

    async def put(self, ticket_id: str, stored: StoredClock) -> None:
        values = _clock_values(ticket_id, stored)
        insert = _insert_for(self._session)(ticket_sla_clocks).values(**values)
        await self._session.execute(
            insert.on_conflict_do_update(
                index_elements=["ticket_id", "metric"],
                set_={key: value for key, value in values.items() if key not in ("ticket_id", "metric")},
            )
        )

    async def remove(self, ticket_id: str, metric: SlaMetric) -> None:
        await self._session.execute(
            sa.delete(ticket_sla_clocks).where(
                ticket_sla_clocks.c.ticket_id == ticket_id, ticket_sla_clocks.c.metric == metric.value
            )
        )

    async def record_escalation(
        self,
        ticket_id: str,
        metric: SlaMetric,
        cycle: int,
        *,
        policy_id: str,
        actions: list[str],
        now: datetime,
    ) -> bool:
        """Log the escalation of (ticket, metric, cycle); False when it was already logged (ran before)."""
        insert = (
            _insert_for(self._session)(sla_escalations)
            .values(
                ticket_id=ticket_id,
                metric=metric.value,
                cycle=cycle,
                policy_id=policy_id,
                actions=actions,
                create_time=now,
            )
            .on_conflict_do_nothing(index_elements=["ticket_id", "metric", "cycle"])
        )
        result = await self._session.execute(insert)
        return bool(result.rowcount)

    async def escalation_counts(self, ticket_ids: Sequence[str]) -> dict[str, int]:
        if not ticket_ids:
            return {}
        query = (
            sa.select(sla_escalations.c.ticket_id, sa.func.count())
            .where(sla_escalations.c.ticket_id.in_(list(ticket_ids)))
            .group_by(sla_escalations.c.ticket_id)
        )
        return {ticket_id: int(count) for ticket_id, count in (await self._session.execute(query)).all()}
