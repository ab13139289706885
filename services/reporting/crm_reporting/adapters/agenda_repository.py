"""Reads and writes of the agenda read model (agenda_items)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import sqlalchemy as sa

from crm_reporting.adapters.agenda_tables import agenda_items
from crm_reporting.adapters.projection_tables import dialect_insert, projection_status
from crm_reporting.domain import agenda as rules

# A tombstone's step: no request of any step replaces a completed approval.
DONE_STEP = 1_000_000

_UPDATABLE = (
    "kind",
    "user",
    "approver_role",
    "approver_team",
    "owner",
    "team",
    "resource",
    "title",
    "customer",
    "due_time",
    "currency",
    "amount_minor",
    "step",
    "event_time",
    "done",
)


async def put(
    session,
    *,
    id: str,
    kind: int,
    event_time: datetime,
    user: str = "",
    approver_role: str = "",
    approver_team: str = "",
    owner: str = "",
    team: str = "",
    resource: str = "",
    title: str = "",
    customer: str = "",
    due_time: datetime | None = None,
    currency: str = "",
    amount_minor: int = 0,
    step: int = 0,
    done: bool = False,
) -> None:
    """Insert or replace the reminder `id` unless a newer event (or a later step) was applied."""
    values = dict(
        id=id,
        kind=kind,
        user=user,
        approver_role=approver_role,
        approver_team=approver_team,
        owner=owner,
        team=team,
        resource=resource,
        title=title,
        customer=customer,
        due_time=due_time,
        currency=currency,
        amount_minor=amount_minor,
        step=step,
        create_time=event_time,
        event_time=event_time,
        done=done,
    )
    insert = dialect_insert(session, agenda_items).values(**values)
    await session.execute(
        insert.on_conflict_do_update(
            index_elements=["id"],
            set_={name: insert.excluded[name] for name in _UPDATABLE},
            where=sa.and_(
                agenda_items.c.event_time <= insert.excluded.event_time,
                agenda_items.c.step <= insert.excluded.step,
            ),
        )
    )


async def complete(
    session, ids: Iterable[str], *, kind: int, event_time: datetime, resource: str = ""
) -> None:
    """Mark reminders done (a tombstone when they were not projected yet)."""
    for item_id in ids:
        values = dict(
            id=item_id,
            kind=kind,
            resource=resource,
            step=DONE_STEP,
            create_time=event_time,
            event_time=event_time,
            done=True,
        )
        insert = dialect_insert(session, agenda_items).values(**values)
        await session.execute(
            insert.on_conflict_do_update(
                index_elements=["id"],
                set_={"done": True, "event_time": insert.excluded.event_time, "step": DONE_STEP},
                where=agenda_items.c.event_time <= insert.excluded.event_time,
            )
        )


async def reassign(
    session, *, resource: str, kinds: Iterable[int], user: str, team: str, event_time: datetime
):
    """Open reminders about `resource` move to its new user (e.g. a ticket reassigned)."""
    await session.execute(
        sa.update(agenda_items)
        .where(
            agenda_items.c.resource == resource,
            agenda_items.c.kind.in_(sorted(kinds)),
            agenda_items.c.done.is_(False),
            agenda_items.c.event_time <= event_time,
            agenda_items.c.user != user,
        )
        .values(user=user, team=team, event_time=event_time)
    )


def for_principal(subject: str, roles: Iterable[str], team: str) -> sa.ColumnElement[bool]:
    """Reminders of the caller: theirs, and approval steps waiting for one of their roles
    (SQL twin of domain.agenda.awaits)."""
    c = agenda_items.c
    role_steps = sa.and_(
        c.user == "",
        c.approver_role != "",
        c.approver_role.in_(sorted(roles)),
        c.owner != subject,
        sa.or_(c.approver_team == "", c.approver_team == team),
    )
    return sa.or_(c.user == subject, role_steps)


def for_user(user: str, *, team: str | None = None) -> sa.ColumnElement[bool]:
    """Reminders addressed to `user` by name (another user's agenda: their roles are unknown here),
    within `team` when given (a manager's view of a member)."""
    clauses = [agenda_items.c.user == user]
    if team is not None:
        clauses.append(agenda_items.c.team == team)
    return sa.and_(*clauses)


def _item(row) -> rules.Item:
    return rules.Item(
        id=row.id,
        kind=row.kind,
        user=row.user,
        resource=row.resource,
        title=row.title,
        customer=row.customer,
        due_time=row.due_time,
        currency=row.currency,
        amount_minor=row.amount_minor,
        create_time=row.create_time,
        event_time=row.event_time,
    )


async def open_items(session, predicate) -> list[rules.Item]:
    rows = await session.execute(
        sa.select(agenda_items).where(agenda_items.c.done.is_(False), predicate).order_by(agenda_items.c.id)
    )
    return [_item(row) for row in rows]


async def as_of(session) -> datetime | None:
    """The occurred_at of the latest event applied by any projection consumer."""
    latest = await session.scalar(sa.select(sa.func.max(projection_status.c.last_event_time)))
    if latest is None:
        latest = await session.scalar(sa.select(sa.func.max(agenda_items.c.event_time)))
    if latest is not None and latest.tzinfo is None:
        latest = latest.replace(tzinfo=UTC)
    return latest


async def has_items_outside_team(session, user: str, team: str) -> bool:
    """Whether `user` has reminders, none of them in `team` (so not a member of it)."""
    rows = (
        (
            await session.execute(
                sa.select(agenda_items.c.team)
                .where(agenda_items.c.user == user, agenda_items.c.team != "")
                .distinct()
            )
        )
        .scalars()
        .all()
    )
    return bool(rows) and team not in rows
