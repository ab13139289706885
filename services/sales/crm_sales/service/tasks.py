"""Use cases for tasks: one function per command or query.

Events: every change publishes, in its transaction, TaskUpdated / TaskCompleted / TaskReopened /
TaskDeleted (a TaskSnapshot: ids and non-personal attributes, never subject or description), so
consumers (the reporting agenda) can move or remove the reminder TaskDue put up.

Reminder: a durable timer (kind `sales.task.reminder`, key = task id) at the task's
effective reminder moment. Every write that can change that moment calls
`_sync_reminder`: open task with a reminder -> schedule (moves an existing timer),
otherwise cancel. The handler re-reads the task and emits TaskDue only if the task
is still open and the timer's moment is still the task's reminder moment (a stale
timer, e.g. one racing an update, is ignored).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from crm.sales.v1 import events_pb2
from crm_sales.adapters.task_repository import (
    DEFAULT_ORDER,
    TASK_FILTERS,
    TASK_ORDERABLE,
    TaskRepository,
    sort_keys,
)
from crm_sales.adapters.task_tables import tasks as tasks_table
from crm_sales.domain import tasks as rules
from crm_sales.domain.tasks import AgendaView, Task, TaskInput
from crm_shared import timers
from crm_shared.aip.etag import check_etag
from crm_shared.aip.fieldmask import resolve_update_mask
from crm_shared.aip.paging import Page, clamp_page_size, parse_order_by, query_fingerprint
from crm_shared.errors import NotFound
from crm_shared.ids import new_id
from crm_shared.principal import Principal

TASKS = "tasks"
REMINDER_TIMER = "sales.task.reminder"
SUBJECT_TASK_DUE = "crm.sales.task.due"
SUBJECT_TASK_UPDATED = "crm.sales.task.updated"
SUBJECT_TASK_COMPLETED = "crm.sales.task.completed"
SUBJECT_TASK_REOPENED = "crm.sales.task.reopened"
SUBJECT_TASK_DELETED = "crm.sales.task.deleted"


def task_not_found(name: str) -> NotFound:
    return NotFound(f"{name} not found", reason="TASK_NOT_FOUND", metadata={"resource": name})


def task_snapshot(task: Task) -> events_pb2.TaskSnapshot:
    snapshot = events_pb2.TaskSnapshot(
        name=task.name,
        assignee=task.assignee,
        owner=task.owner,
        team=task.team,
        related=task.related,
        done=task.done,
    )
    snapshot.due_time.FromDatetime(task.due_time)
    if task.effective_reminder is not None:
        snapshot.reminder_time.FromDatetime(task.effective_reminder)
    if task.done_time is not None:
        snapshot.done_time.FromDatetime(task.done_time)
    return snapshot


async def _sync_reminder(uow, task: Task) -> None:
    at = task.effective_reminder
    if task.done or at is None:
        await timers.cancel(uow, REMINDER_TIMER, task.id)
    else:
        await timers.schedule(uow, REMINDER_TIMER, task.id, at, {"at": at.isoformat()})


async def create_task(uow, deps, principal: Principal, data: TaskInput) -> Task:
    grant = deps.policy.grant(principal, TASKS, "create")
    task = rules.new_task(data, task_id=new_id(), now=uow.now, grant=grant)
    await TaskRepository(uow.session).add(task)
    await _sync_reminder(uow, task)
    uow.audit("created", task.name, ["subject", "due_time", "assignee", "owner", "team"])
    return task


async def _visible(session, deps, principal: Principal, task_id: str, action: str, *, lock=False) -> Task:
    grant = deps.policy.grant(principal, TASKS, action)
    task = await TaskRepository(session).get(task_id, grant, lock=lock)
    if task is None:
        raise task_not_found(f"tasks/{task_id}")
    return task


async def get_task(session: AsyncSession, deps, principal: Principal, task_id: str) -> Task:
    return await _visible(session, deps, principal, task_id, "read")


def _view_predicate(view: AgendaView, principal: Principal, now, time_zone: str):
    if view is AgendaView.ALL:
        return None
    mine = sa.and_(tasks_table.c.assignee == principal.subject, tasks_table.c.done == sa.false())
    if view is AgendaView.OVERDUE:
        return sa.and_(mine, tasks_table.c.due_time < now)
    start, end = rules.today_window(now, rules.zone(time_zone))
    if view is AgendaView.TODAY:
        return sa.and_(mine, tasks_table.c.due_time >= start, tasks_table.c.due_time < end)
    return sa.and_(mine, tasks_table.c.due_time >= end)


async def list_tasks(
    session: AsyncSession,
    deps,
    principal: Principal,
    *,
    page_size: int,
    page_token: str,
    filter_text: str,
    order_by: str,
    view: AgendaView = AgendaView.ALL,
    time_zone: str = "",
    now=None,
) -> Page:
    grant = deps.policy.grant(principal, TASKS, "read")
    limit = clamp_page_size(page_size)
    order = parse_order_by(order_by, allowed=TASK_ORDERABLE, default=DEFAULT_ORDER)
    where = TASK_FILTERS.compile(filter_text)
    now = now or deps.clock.now()
    view_where = _view_predicate(view, principal, now, time_zone)
    if view_where is not None:
        where = view_where if where is None else sa.and_(where, view_where)
    # The view's window is part of the query: a token from yesterday's TODAY page is not reusable today.
    window = "" if view is AgendaView.ALL else f"{view.value}:{time_zone}:{now.date().isoformat()}"
    query = query_fingerprint("tasks", filter_text.strip(), order.canonical, principal.subject, window)
    after = deps.page_tokens.decode(page_token, query=query) if page_token else None
    rows = await TaskRepository(session).list(
        grant, where=where, sort=sort_keys(order.fields), after=after, limit=limit + 1
    )
    page, more = rows[:limit], len(rows) > limit
    token = ""
    if more:
        last = page[-1]
        keys = [int(getattr(last, f)) if f == "priority" else getattr(last, f) for f, _ in order.fields]
        token = deps.page_tokens.encode([*keys, last.id], query=query)
    return Page(page, token)


async def update_task(
    uow, deps, principal: Principal, task_id: str, data: TaskInput, mask: Sequence[str], etag: str
) -> Task:
    fields = resolve_update_mask(
        mask, writable=rules.TASK_WRITABLE_FIELDS, output_only=rules.TASK_OUTPUT_ONLY_FIELDS
    )
    current = await _visible(uow.session, deps, principal, task_id, "update", lock=True)
    check_etag(etag, current.id, current.row_version, resource=current.name)
    grant = deps.policy.grant(principal, TASKS, "update")
    updated, changed = rules.update_task(current, data, fields, now=uow.now, grant=grant)
    if not changed:
        return current
    await TaskRepository(uow.session).save(updated, expected_row_version=current.row_version)
    if current.effective_reminder != updated.effective_reminder:
        await _sync_reminder(uow, updated)
    uow.emit(
        SUBJECT_TASK_UPDATED,
        events_pb2.TaskUpdated(task=task_snapshot(updated), changed_fields=list(changed)),
        resource=updated.name,
    )
    uow.audit("updated", updated.name, changed)
    return updated


async def delete_task(uow, deps, principal: Principal, task_id: str, etag: str) -> None:
    task = await _visible(uow.session, deps, principal, task_id, "delete", lock=True)
    check_etag(etag, task.id, task.row_version, resource=task.name)
    await TaskRepository(uow.session).remove(task.id)
    await timers.cancel(uow, REMINDER_TIMER, task.id)
    uow.emit(
        SUBJECT_TASK_DELETED,
        events_pb2.TaskDeleted(task=task.name, assignee=task.assignee, owner=task.owner, team=task.team),
        resource=task.name,
    )
    uow.audit("deleted", task.name, [])


async def complete_task(uow, deps, principal: Principal, task_id: str, etag: str) -> Task:
    current = await _visible(uow.session, deps, principal, task_id, "update", lock=True)
    if current.done:
        return current  # idempotent
    check_etag(etag, current.id, current.row_version, resource=current.name)
    done = rules.complete_task(current, now=uow.now)
    await TaskRepository(uow.session).save(done, expected_row_version=current.row_version)
    await timers.cancel(uow, REMINDER_TIMER, done.id)
    uow.emit(SUBJECT_TASK_COMPLETED, events_pb2.TaskCompleted(task=task_snapshot(done)), resource=done.name)
    uow.audit("completed", done.name, ["done", "done_time"])
    return done


async def reopen_task(uow, deps, principal: Principal, task_id: str, etag: str) -> Task:
    current = await _visible(uow.session, deps, principal, task_id, "update", lock=True)
    check_etag(etag, current.id, current.row_version, resource=current.name)
    reopened = rules.reopen_task(current, now=uow.now)
    await TaskRepository(uow.session).save(reopened, expected_row_version=current.row_version)
    at = reopened.effective_reminder
    if at is not None and at > uow.now:
        await _sync_reminder(uow, reopened)
    uow.emit(
        SUBJECT_TASK_REOPENED, events_pb2.TaskReopened(task=task_snapshot(reopened)), resource=reopened.name
    )
    uow.audit("reopened", reopened.name, ["done", "done_time"])
    return reopened


async def fire_reminder(uow, task_id: str, payload: dict) -> bool:
    """The reminder timer's work: emit TaskDue in this transaction if the task still wants it."""
    task = await TaskRepository(uow.session).get(task_id, lock=True)
    if task is None or task.done:
        return False
    at = task.effective_reminder
    if at is None or at.isoformat() != payload.get("at"):
        return False
    message = events_pb2.TaskDue(
        task=task.name,
        assignee=task.assignee,
        related=task.related,
        subject=task.subject,
        owner=task.owner,
        team=task.team,
    )
    message.due_time.FromDatetime(task.due_time)
    uow.emit(SUBJECT_TASK_DUE, message, resource=task.name)
    return True
