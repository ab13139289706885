"""The agenda (待办), pure rules: which reminder each event makes, its stable id, who it is for,
when it is overdue and in which order the agenda lists them.

Ids are derived from the entity the reminder is about (never from the event), so a redelivered
or repeated event updates the same reminder instead of adding one, and the event that completes
the work (a follow-up logged, a lead converted, an installment paid, a ticket resolved…) finds
it to mark it done.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# crm.reporting.v1.AgendaItemKind
FOLLOW_UP_DUE = 1
TASK_DUE = 2
NEW_LEAD = 3
RECLAIM_WARNING = 4
APPROVAL_WAITING = 5
CONTRACT_EXPIRING = 6
RECEIVABLE_DUE = 7
RECEIVABLE_OVERDUE = 8
TICKET_NEAR_BREACH = 9
TICKET_BREACHED = 10

# Kinds that are overdue by nature, whatever their due time.
ALWAYS_OVERDUE = frozenset({RECEIVABLE_OVERDUE, TICKET_BREACHED})

# Kinds without a deadline (due when they arrive): listed, never overdue.
NO_DEADLINE = frozenset({NEW_LEAD, APPROVAL_WAITING})

MANAGER_ROLE = "sales_manager"
DEFAULT_WINDOW_DAYS = 7


def follow_up_id(customer: str) -> str:
    return f"follow-up:{customer}"


def reclaim_id(customer: str) -> str:
    return f"reclaim:{customer}"


def task_id(task: str) -> str:
    return f"task:{task}"


def task_on_agenda(*, done: bool, reminder_time: datetime | None, event_time: datetime) -> bool:
    """Whether a task changed at `event_time` is a reminder: open, with its reminder moment passed
    (TaskDue is published at that moment). Otherwise it waits for its next TaskDue, if any."""
    return not done and reminder_time is not None and reminder_time <= event_time


def lead_id(lead: str) -> str:
    return f"lead:{lead}"


def approval_id(approval: str) -> str:
    return f"approval:{approval}"


def renewal_id(contract: str) -> str:
    return f"renewal:{contract}"


def installment_id(installment: str) -> str:
    return f"installment:{installment}"


def sla_id(ticket: str, metric: int) -> str:
    return f"sla:{ticket}:{int(metric)}"


SLA_METRICS = (1, 2, 3)


@dataclass(frozen=True)
class ApproverSpec:
    """Who an approval step waits for: one user, or every holder of a role (in a team when set)."""

    user: str = ""
    role: str = ""
    team: str = ""


def approver_spec(*, kind: int, role: str, user: str, team: str) -> ApproverSpec:
    """crm.contract.v1.ApproverKind: ROLE=1, USER=2, OWNER_MANAGER=3 (a sales manager of the owner's
    team; an empty team has no manager, so nobody)."""
    if kind == 1:
        return ApproverSpec(role=role)
    if kind == 2:
        return ApproverSpec(user=user)
    if kind == 3 and team:
        return ApproverSpec(role=MANAGER_ROLE, team=team)
    return ApproverSpec()


def awaits(spec: ApproverSpec, *, owner: str, subject: str, roles: frozenset[str], team: str) -> bool:
    """Whether the step waits for this principal (the owner, a party, never approves)."""
    if spec.user:
        return spec.user == subject
    if not spec.role or subject == owner or spec.role not in roles:
        return False
    return not spec.team or spec.team == team


def is_overdue(kind: int, due_time: datetime | None, now: datetime) -> bool:
    if kind in ALWAYS_OVERDUE:
        return True
    if kind in NO_DEADLINE:
        return False
    return due_time is not None and due_time < now


def default_until(now: datetime) -> datetime:
    """The end of the 7th day from now, UTC."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day + timedelta(days=DEFAULT_WINDOW_DAYS + 1)


@dataclass(frozen=True)
class Item:
    id: str
    kind: int
    user: str
    resource: str
    title: str
    customer: str
    due_time: datetime | None
    currency: str
    amount_minor: int
    create_time: datetime
    # The newest event applied to it: a change (e.g. due -> overdue) is a new reminder to push.
    event_time: datetime | None = None
    overdue: bool = False

    @property
    def version(self) -> tuple[str, str, datetime | None]:
        return (self.id, self.user, self.event_time)


def visible(item: Item, *, now: datetime, until: datetime) -> bool:
    """Overdue items always; the others when due before `until` (no due time: due now)."""
    if is_overdue(item.kind, item.due_time, now):
        return True
    return (item.due_time or now) <= until


def ordered(items: list[Item], now: datetime) -> list[Item]:
    """Overdue first, then by due time (no due time = now), then by id for a stable order."""
    far = datetime.max.replace(tzinfo=UTC)

    def key(item: Item):
        overdue = is_overdue(item.kind, item.due_time, now)
        return (0 if overdue else 1, item.due_time or now or far, item.id)

    return sorted(items, key=key)
