"""Tasks: entity, input rules, reminder arithmetic and agenda windows (pure functions)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crm_shared.access import Scope, ScopeGrant
from crm_shared.errors import FailedPrecondition, InvalidArgument, PermissionDenied, Violations

MAX_REMIND_BEFORE = timedelta(days=90)


class Priority(enum.IntEnum):
    LOW = 1
    NORMAL = 2
    HIGH = 3
    URGENT = 4


class AgendaView(enum.Enum):
    ALL = "all"
    TODAY = "today"
    OVERDUE = "overdue"
    UPCOMING = "upcoming"


@dataclass
class Task:
    id: str
    subject: str
    due_time: datetime
    assignee: str
    owner: str
    team: str
    create_time: datetime
    update_time: datetime
    description: str = ""
    remind_before: timedelta | None = None
    reminder_time: datetime | None = None
    priority: Priority = Priority.NORMAL
    related: str = ""
    done: bool = False
    done_time: datetime | None = None
    row_version: int = 1

    @property
    def name(self) -> str:
        return f"tasks/{self.id}"

    @property
    def effective_reminder(self) -> datetime | None:
        """reminder_time when set, else due_time - remind_before; None = no reminder."""
        if self.reminder_time is not None:
            return self.reminder_time
        if self.remind_before is not None:
            return self.due_time - self.remind_before
        return None


@dataclass(frozen=True)
class TaskInput:
    subject: str = ""
    description: str = ""
    due_time: datetime | None = None
    remind_before: timedelta | None = None
    reminder_time: datetime | None = None
    assignee: str = ""
    priority: Priority | None = None
    related: str = ""
    owner: str = ""
    team: str = ""


TASK_WRITABLE_FIELDS = frozenset(
    {
        "subject",
        "description",
        "due_time",
        "remind_before",
        "reminder_time",
        "assignee",
        "priority",
        "related",
        "owner",
        "team",
    }
)
TASK_OUTPUT_ONLY_FIELDS = frozenset(
    {"name", "done", "done_time", "effective_reminder_time", "create_time", "update_time", "etag"}
)


def _check_remind_before(value: timedelta | None, violations: Violations) -> None:
    if value is not None and not (timedelta(0) <= value <= MAX_REMIND_BEFORE):
        violations.add("task.remind_before", "must be between 0 and 90 days")


def check_in_scope(grant: ScopeGrant, *, owner: str, assignee: str, team: str) -> None:
    """Own scope: the caller must stay the owner or the assignee; team scope: their team."""
    if grant.scope is Scope.OWN and grant.subject not in (owner, assignee):
        raise PermissionDenied(
            "you can only keep tasks you own or are assigned to", reason="OWNER_OUTSIDE_SCOPE"
        )
    if grant.scope is Scope.TEAM and team != grant.team:
        raise PermissionDenied(
            f"you can only place tasks in your team ({grant.team or 'none'})", reason="TEAM_OUTSIDE_SCOPE"
        )


def new_task(data: TaskInput, *, task_id: str, now: datetime, grant: ScopeGrant) -> Task:
    violations = Violations()
    if not data.subject.strip():
        violations.add("task.subject", "is required")
    if data.due_time is None:
        violations.add("task.due_time", "is required")
    _check_remind_before(data.remind_before, violations)
    violations.raise_if_any("the task has invalid fields")
    assert data.due_time is not None
    owner = data.owner.strip() or grant.subject
    assignee = data.assignee.strip() or grant.subject
    team = data.team.strip() or grant.team
    check_in_scope(grant, owner=owner, assignee=assignee, team=team)
    return Task(
        id=task_id,
        subject=data.subject.strip(),
        description=data.description,
        due_time=data.due_time,
        remind_before=data.remind_before,
        reminder_time=data.reminder_time,
        assignee=assignee,
        priority=data.priority or Priority.NORMAL,
        related=data.related,
        owner=owner,
        team=team,
        create_time=now,
        update_time=now,
    )


def update_task(
    current: Task, data: TaskInput, fields: frozenset[str], *, now: datetime, grant: ScopeGrant
) -> tuple[Task, list[str]]:
    violations = Violations()
    changes: dict[str, object] = {}
    if "subject" in fields:
        if not data.subject.strip():
            violations.add("task.subject", "is required")
        changes["subject"] = data.subject.strip()
    if "description" in fields:
        changes["description"] = data.description
    if "due_time" in fields:
        if data.due_time is None:
            violations.add("task.due_time", "is required")
        changes["due_time"] = data.due_time
    if "remind_before" in fields:
        _check_remind_before(data.remind_before, violations)
        changes["remind_before"] = data.remind_before
    if "reminder_time" in fields:
        changes["reminder_time"] = data.reminder_time
    if "assignee" in fields:
        changes["assignee"] = data.assignee.strip() or grant.subject
    if "priority" in fields:
        changes["priority"] = data.priority or Priority.NORMAL
    if "related" in fields:
        changes["related"] = data.related
    if "owner" in fields:
        changes["owner"] = data.owner.strip() or grant.subject
    if "team" in fields:
        changes["team"] = data.team.strip() or grant.team
    violations.raise_if_any("the task has invalid fields")
    changed = [name for name, value in changes.items() if getattr(current, name) != value]
    if not changed:
        return current, []
    updated = replace(current, **changes, update_time=now, row_version=current.row_version + 1)
    if {"owner", "assignee", "team"} & set(changed):
        check_in_scope(grant, owner=updated.owner, assignee=updated.assignee, team=updated.team)
    return updated, changed


def complete_task(task: Task, *, now: datetime) -> Task:
    if task.done:
        return task
    return replace(task, done=True, done_time=now, update_time=now, row_version=task.row_version + 1)


def reopen_task(task: Task, *, now: datetime) -> Task:
    if not task.done:
        raise FailedPrecondition(
            f"{task.name} is not done", reason="TASK_NOT_DONE", metadata={"resource": task.name}
        )
    return replace(task, done=False, done_time=None, update_time=now, row_version=task.row_version + 1)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name.strip() or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument.for_field(
            "time_zone", f"unknown time zone {name!r}; use an IANA name such as 'Asia/Shanghai'"
        ) from None


def today_window(now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of the caller's calendar day containing `now`, in `tz` (DST-correct)."""
    local = now.astimezone(tz).date()
    start = datetime.combine(local, time(0), tzinfo=tz)
    end = datetime.combine(local + timedelta(days=1), time(0), tzinfo=tz)
    return start, end
