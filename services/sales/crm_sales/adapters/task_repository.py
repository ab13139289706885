"""Tasks in the database; data scope (owner OR assignee = own) in every query."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from crm_sales.adapters.task_tables import tasks
from crm_sales.domain.tasks import Priority, Task
from crm_shared.access import ScopeGrant
from crm_shared.access.sql import scope_predicate
from crm_shared.aip.filtering import FilterField, FilterSchema
from crm_shared.aip.paging import SortKey, keyset_after, keyset_order
from crm_shared.errors import Aborted

PRIORITY_FILTER_VALUES = {f"TASK_PRIORITY_{p.name}": p.value for p in Priority}
TASK_ORDERABLE = ("due_time", "create_time", "priority")
DEFAULT_ORDER = "due_time"

TASK_FILTERS = FilterSchema(
    {
        "assignee": FilterField.string(tasks.c.assignee),
        "owner": FilterField.string(tasks.c.owner),
        "team": FilterField.string(tasks.c.team),
        "done": FilterField.boolean(tasks.c.done),
        "due_time": FilterField.timestamp(tasks.c.due_time),
        "priority": FilterField.enum(tasks.c.priority, PRIORITY_FILTER_VALUES),
        "related": FilterField.string(tasks.c.related),
        "create_time": FilterField.timestamp(tasks.c.create_time),
    }
)


def sort_keys(fields: tuple[tuple[str, bool], ...]) -> list[SortKey]:
    keys = [SortKey(tasks.c[name], descending) for name, descending in fields]
    return [*keys, SortKey(tasks.c.id, fields[-1][1] if fields else False)]


def task_values(t: Task) -> dict[str, Any]:
    return {
        "id": t.id,
        "subject": t.subject,
        "description": t.description,
        "due_time": t.due_time,
        "remind_before_seconds": None if t.remind_before is None else int(t.remind_before.total_seconds()),
        "reminder_time": t.reminder_time,
        "assignee": t.assignee,
        "priority": int(t.priority),
        "related": t.related,
        "done": t.done,
        "done_time": t.done_time,
        "owner": t.owner,
        "team": t.team,
        "create_time": t.create_time,
        "update_time": t.update_time,
        "row_version": t.row_version,
    }


def task_from_row(row: Any) -> Task:
    seconds = row["remind_before_seconds"]
    return Task(
        id=row["id"],
        subject=row["subject"],
        description=row["description"],
        due_time=row["due_time"],
        remind_before=None if seconds is None else timedelta(seconds=seconds),
        reminder_time=row["reminder_time"],
        assignee=row["assignee"],
        priority=Priority(row["priority"]),
        related=row["related"],
        done=bool(row["done"]),
        done_time=row["done_time"],
        owner=row["owner"],
        team=row["team"],
        create_time=row["create_time"],
        update_time=row["update_time"],
        row_version=row["row_version"],
    )


class TaskRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @staticmethod
    def scope(grant: ScopeGrant) -> sa.ColumnElement[bool]:
        # "Own" = tasks the caller owns or is assigned to.
        return scope_predicate(
            grant, owner=tasks.c.owner, team=tasks.c.team, shared_with=tasks.c.assignee == grant.subject
        )

    async def get(self, task_id: str, grant: ScopeGrant | None = None, *, lock: bool = False) -> Task | None:
        query = sa.select(tasks).where(tasks.c.id == task_id)
        if grant is not None:
            query = query.where(self.scope(grant))
        if lock and self.session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()
        row = (await self.session.execute(query)).mappings().first()
        return None if row is None else task_from_row(row)

    async def list(
        self, grant: ScopeGrant, *, where, sort: Sequence[SortKey], after: Sequence[Any] | None, limit: int
    ) -> list[Task]:
        query = sa.select(tasks).where(self.scope(grant))
        if where is not None:
            query = query.where(where)
        if after is not None:
            query = query.where(keyset_after(sort, after))
        query = query.order_by(*keyset_order(sort)).limit(limit)
        return [task_from_row(row) for row in (await self.session.execute(query)).mappings().all()]

    async def add(self, task: Task) -> None:
        await self.session.execute(sa.insert(tasks).values(task_values(task)))

    async def save(self, task: Task, *, expected_row_version: int) -> None:
        values = task_values(task)
        del values["id"], values["create_time"]
        result = await self.session.execute(
            sa.update(tasks)
            .where(tasks.c.id == task.id, tasks.c.row_version == expected_row_version)
            .values(values)
        )
        if result.rowcount != 1:
            raise Aborted(
                f"{task.name} was changed concurrently; read it again and retry", reason="CONCURRENT_UPDATE"
            )

    async def remove(self, task_id: str) -> None:
        await self.session.execute(sa.delete(tasks).where(tasks.c.id == task_id))
