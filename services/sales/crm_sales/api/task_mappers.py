"""Protobuf <-> domain for tasks."""

from __future__ import annotations

from crm.sales.v1 import task_service_pb2 as pb
from crm_sales.api.catalog_mappers import from_timestamp, timestamp
from crm_sales.domain.tasks import AgendaView, Priority, Task, TaskInput
from crm_shared.aip.etag import etag_for

PRIORITY_TO_PB = {p: pb.TaskPriority.Value(f"TASK_PRIORITY_{p.name}") for p in Priority}
PRIORITY_FROM_PB = {v: k for k, v in PRIORITY_TO_PB.items()}
VIEW_FROM_PB = {
    pb.TASK_VIEW_UNSPECIFIED: AgendaView.ALL,
    pb.TASK_VIEW_TODAY: AgendaView.TODAY,
    pb.TASK_VIEW_OVERDUE: AgendaView.OVERDUE,
    pb.TASK_VIEW_UPCOMING: AgendaView.UPCOMING,
}


def task_input(message: pb.Task) -> TaskInput:
    return TaskInput(
        subject=message.subject,
        description=message.description,
        due_time=from_timestamp(message.due_time) if message.HasField("due_time") else None,
        remind_before=message.remind_before.ToTimedelta() if message.HasField("remind_before") else None,
        reminder_time=from_timestamp(message.reminder_time) if message.HasField("reminder_time") else None,
        assignee=message.assignee,
        priority=PRIORITY_FROM_PB.get(message.priority),
        related=message.related,
        owner=message.owner,
        team=message.team,
    )


def task_to_pb(task: Task) -> pb.Task:
    message = pb.Task(
        name=task.name,
        subject=task.subject,
        description=task.description,
        due_time=timestamp(task.due_time),
        assignee=task.assignee,
        priority=PRIORITY_TO_PB[task.priority],
        related=task.related,
        done=task.done,
        owner=task.owner,
        team=task.team,
        create_time=timestamp(task.create_time),
        update_time=timestamp(task.update_time),
        etag=etag_for(task.id, task.row_version),
    )
    if task.remind_before is not None:
        message.remind_before.FromTimedelta(task.remind_before)
    if task.reminder_time is not None:
        message.reminder_time.CopyFrom(timestamp(task.reminder_time))
    if task.effective_reminder is not None:
        message.effective_reminder_time.CopyFrom(timestamp(task.effective_reminder))
    if task.done_time is not None:
        message.done_time.CopyFrom(timestamp(task.done_time))
    return message
