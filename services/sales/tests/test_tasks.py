"""TaskService through a real gRPC channel, on SQLite and PostgreSQL, with real NATS.

Reminders are durable timers driven by a ManualClock: TaskDue is on the CRM_SALES
stream at the reminder moment (not before), moving the due time moves it, and
completing or deleting the task cancels it. Agenda views, data scope and
INVALID_ARGUMENT field paths are checked as a caller sees them.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from lead_stack import sales_settings

from crm.sales.v1 import events_pb2
from crm.sales.v1 import task_service_pb2 as pb
from crm.sales.v1 import task_service_pb2_grpc as pb_grpc
from crm_sales.api.tasks import TaskServicer
from crm_sales.bootstrap import build
from crm_sales.service.tasks import REMINDER_TIMER
from crm_shared.clock import ManualClock
from crm_shared.grpc.status import error_details
from crm_shared.runtime import start_service
from crm_shared.testing.events import stream_envelopes, wait_for_envelopes
from crm_shared.testing.fixtures_nats import connect_nats
from crm_shared.timers import TimerScheduler, get_timer

pytestmark = pytest.mark.asyncio(loop_scope="session")

STREAM = "CRM_SALES"


def ts(moment: datetime) -> timestamp_pb2.Timestamp:
    value = timestamp_pb2.Timestamp()
    value.FromDatetime(moment)
    return value


def minutes(n: int) -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromTimedelta(timedelta(minutes=n))
    return value


async def expect_error(call, code: grpc.StatusCode):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    details = error_details(caught.value)
    assert details.code == code, f"{details.code} {details.message}"
    return details


@pytest.fixture
def tasks(channel):
    return pb_grpc.TaskServiceStub(channel)


async def task_events(
    nats_url: str, resource: str, *, expect: int, subject: str = "crm.sales.task.>"
) -> list:
    """The events about `resource` on `subject` (waiting for `expect` of them; 0: none arrive)."""
    nc = await connect_nats(nats_url)
    try:
        js = nc.jetstream()
        if expect:
            await wait_for_envelopes(js, STREAM, subject=subject, resource=resource, count=expect)
        else:
            await asyncio.sleep(0.3)
        return [env for _, env in await stream_envelopes(js, STREAM, subject) if env.subject == resource]
    finally:
        await nc.close()


async def task_due_events(nats_url: str, resource: str, *, expect: int) -> list:
    return await task_events(nats_url, resource, expect=expect, subject="crm.sales.task.due")


async def test_reminder_fires_at_its_time_moves_with_due_time_and_is_cancelled_by_complete(  # noqa: PLR0915
    database_url, nats_server, jwt_keys, token_factory
):
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    running = await start_service(sales_settings(database_url, nats_server.url, jwt_keys), build, clock=clock)
    try:
        meta = (
            ("authorization", f"Bearer {token_factory(subject='bob', roles=('sales_rep',), team='east')}"),
        )
        scheduler = next(w for w in running.parts.workers if isinstance(w, TimerScheduler))
        app = next(s for _, s in running.parts.servicers if isinstance(s, TaskServicer))._app

        async def timer_due(task_id: str):
            async with app.db.read_session() as session:
                timer = await get_timer(session, app.uow_factory.tables, REMINDER_TIMER, task_id)
            return None if timer is None else timer.due_at

        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = pb_grpc.TaskServiceStub(channel)
            related = f"opportunities/{uuid.uuid4()}"
            task = await stub.CreateTask(
                pb.CreateTaskRequest(
                    task=pb.Task(
                        subject="Call back about pricing",
                        due_time=ts(clock.now() + timedelta(hours=3)),
                        remind_before=minutes(30),
                        priority=pb.TASK_PRIORITY_HIGH,
                        related=related,
                    ),
                    request_id=str(uuid.uuid4()),
                ),
                metadata=meta,
            )
            assert task.assignee == "bob" and task.owner == "bob" and not task.done
            reminder = clock.now() + timedelta(hours=2, minutes=30)
            assert task.effective_reminder_time.ToDatetime(tzinfo=UTC) == reminder
            assert await timer_due(task.name.split("/")[1]) == reminder

            # Before its time nothing fires.
            clock.advance(timedelta(hours=2))
            await scheduler.run_due()
            assert await task_due_events(nats_server.url, task.name, expect=0) == []

            # Moving the due time moves the reminder (due + 1 day, still 30 min before).
            moved = await stub.UpdateTask(
                pb.UpdateTaskRequest(
                    task=pb.Task(
                        name=task.name, due_time=ts(clock.now() + timedelta(days=1)), etag=task.etag
                    ),
                    update_mask=field_mask_pb2.FieldMask(paths=["due_time"]),
                ),
                metadata=meta,
            )
            new_reminder = clock.now() + timedelta(days=1) - timedelta(minutes=30)
            assert await timer_due(task.name.split("/")[1]) == new_reminder
            clock.advance(timedelta(hours=1))  # past the old reminder moment
            await scheduler.run_due()
            assert await task_due_events(nats_server.url, task.name, expect=0) == []

            clock.set(new_reminder + timedelta(seconds=1))
            await scheduler.run_due()
            events = await task_due_events(nats_server.url, task.name, expect=1)
            assert [e.type for e in events] == ["crm.sales.v1.TaskDue"]
            due = events_pb2.TaskDue()
            events[0].payload.Unpack(due)
            assert (due.task, due.assignee, due.related, due.subject) == (
                task.name,
                "bob",
                related,
                "Call back about pricing",
            )
            assert due.due_time == moved.due_time
            assert await timer_due(task.name.split("/")[1]) is None  # fired once, gone

            # A second task: completing it cancels the reminder; reopening (future reminder) restores it.
            other = await stub.CreateTask(
                pb.CreateTaskRequest(
                    task=pb.Task(
                        subject="Send contract",
                        due_time=ts(clock.now() + timedelta(hours=5)),
                        reminder_time=ts(clock.now() + timedelta(hours=1)),
                    )
                ),
                metadata=meta,
            )
            other_id = other.name.split("/")[1]
            assert await timer_due(other_id) == clock.now() + timedelta(hours=1)
            done = await stub.CompleteTask(pb.CompleteTaskRequest(name=other.name), metadata=meta)
            assert done.done and done.done_time.ToDatetime(tzinfo=UTC) == clock.now()
            assert await timer_due(other_id) is None
            again = await stub.CompleteTask(pb.CompleteTaskRequest(name=other.name), metadata=meta)
            assert again.etag == done.etag  # completing a done task is a no-op
            reopened = await stub.ReopenTask(pb.ReopenTaskRequest(name=other.name), metadata=meta)
            assert not reopened.done and not reopened.HasField("done_time")
            assert await timer_due(other_id) == clock.now() + timedelta(hours=1)
            await stub.DeleteTask(pb.DeleteTaskRequest(name=other.name, etag=reopened.etag), metadata=meta)
            assert await timer_due(other_id) is None
            clock.advance(timedelta(hours=2))
            await scheduler.run_due()
            assert await task_due_events(nats_server.url, other.name, expect=0) == []
    finally:
        await running.stop(1)


async def test_update_complete_reopen_delete_publish_task_events(nats_server, tasks, as_user):
    """Each change is on CRM_SALES in order, as a TaskSnapshot without subject or description;
    a no-op update and completing a done task publish nothing."""
    meta = as_user("sales_rep", "kim", team="north")
    related = f"customers/{uuid.uuid4()}"
    now = datetime.now(UTC).replace(microsecond=0)
    task = await tasks.CreateTask(
        pb.CreateTaskRequest(
            task=pb.Task(
                subject="Call Mrs. Wang on 138-0000-0000",
                description="private notes",
                due_time=ts(now + timedelta(hours=2)),
                reminder_time=ts(now + timedelta(hours=1)),
                related=related,
            )
        ),
        metadata=meta,
    )
    new_due = now + timedelta(days=1)
    moved = await tasks.UpdateTask(
        pb.UpdateTaskRequest(
            task=pb.Task(name=task.name, due_time=ts(new_due), assignee="lea", etag=task.etag),
            update_mask=field_mask_pb2.FieldMask(paths=["due_time", "assignee"]),
        ),
        metadata=meta,
    )
    same = await tasks.UpdateTask(
        pb.UpdateTaskRequest(
            task=pb.Task(name=task.name, assignee="lea", etag=moved.etag),
            update_mask=field_mask_pb2.FieldMask(paths=["assignee"]),
        ),
        metadata=meta,
    )
    assert same.etag == moved.etag  # nothing changed: no event
    done = await tasks.CompleteTask(pb.CompleteTaskRequest(name=task.name), metadata=meta)
    await tasks.CompleteTask(pb.CompleteTaskRequest(name=task.name), metadata=meta)  # no-op
    reopened = await tasks.ReopenTask(pb.ReopenTaskRequest(name=task.name), metadata=meta)
    await tasks.DeleteTask(pb.DeleteTaskRequest(name=task.name, etag=reopened.etag), metadata=meta)

    # The outbox publishes in commit order: once the deletion is there, every earlier event is.
    events = await task_events(nats_server.url, task.name, expect=4)
    assert [e.type for e in events] == [
        "crm.sales.v1.TaskUpdated",
        "crm.sales.v1.TaskCompleted",
        "crm.sales.v1.TaskReopened",
        "crm.sales.v1.TaskDeleted",
    ]
    updated, completed = events_pb2.TaskUpdated(), events_pb2.TaskCompleted()
    reopened_event, deleted = events_pb2.TaskReopened(), events_pb2.TaskDeleted()
    for envelope, message in zip(events, (updated, completed, reopened_event, deleted), strict=True):
        envelope.payload.Unpack(message)
        assert b"Wang" not in message.SerializeToString() and b"private" not in message.SerializeToString()
    snap = updated.task
    assert (snap.name, snap.assignee, snap.owner, snap.team, snap.related, snap.done) == (
        task.name,
        "lea",
        "kim",
        "north",
        related,
        False,
    )
    assert snap.due_time.ToDatetime(tzinfo=UTC) == new_due
    assert snap.reminder_time == task.reminder_time
    assert sorted(updated.changed_fields) == ["assignee", "due_time"]
    assert completed.task.done and completed.task.done_time == done.done_time
    assert completed.task.assignee == "lea" and completed.task.due_time == moved.due_time
    assert not reopened_event.task.done and not reopened_event.task.HasField("done_time")
    assert (deleted.task, deleted.assignee, deleted.owner, deleted.team) == (task.name, "lea", "kim", "north")


async def test_agenda_views_today_overdue_upcoming_in_the_callers_time_zone(tasks, as_user):
    subject = f"rep-{uuid.uuid4().hex[:8]}"
    rep = as_user("sales_rep", subject, team="east")
    tz = ZoneInfo("Asia/Shanghai")
    now = datetime.now(UTC)
    local_today = now.astimezone(tz).date()
    start = datetime(local_today.year, local_today.month, local_today.day, tzinfo=tz)
    end = start + timedelta(days=1)
    moments = {
        "yesterday": start - timedelta(hours=2),
        "earlier_today": max(start, now - timedelta(minutes=30)),
        "later_today": min(end - timedelta(seconds=1), now + timedelta(minutes=1)),
        "tomorrow": end + timedelta(hours=3),
    }
    created = {}
    for label, moment in moments.items():
        created[label] = await tasks.CreateTask(
            pb.CreateTaskRequest(task=pb.Task(subject=label, due_time=ts(moment))), metadata=rep
        )
    done = await tasks.CreateTask(
        pb.CreateTaskRequest(task=pb.Task(subject="done overdue", due_time=ts(start - timedelta(days=3)))),
        metadata=rep,
    )
    await tasks.CompleteTask(pb.CompleteTaskRequest(name=done.name), metadata=rep)
    # Someone else's task due today is not in my agenda.
    await tasks.CreateTask(
        pb.CreateTaskRequest(task=pb.Task(subject="not mine", due_time=ts(moments["later_today"]))),
        metadata=as_user("sales_rep", f"x-{uuid.uuid4().hex[:6]}", team="east"),
    )

    async def view(v: int) -> list[str]:
        reply = await tasks.ListTasks(pb.ListTasksRequest(view=v, time_zone="Asia/Shanghai"), metadata=rep)
        return [t.subject for t in reply.tasks]

    today = await view(pb.TASK_VIEW_TODAY)
    overdue = await view(pb.TASK_VIEW_OVERDUE)
    upcoming = await view(pb.TASK_VIEW_UPCOMING)
    expected_today = (
        ["earlier_today", "later_today"] if moments["earlier_today"] < moments["later_today"] else []
    )
    if expected_today:
        assert today == expected_today  # ordered by due_time
    assert "yesterday" in overdue and "tomorrow" not in overdue and "done overdue" not in overdue
    assert upcoming == ["tomorrow"]
    # Plain list with a filter: done tasks, and order_by.
    done_list = await tasks.ListTasks(pb.ListTasksRequest(filter="done = true"), metadata=rep)
    assert [t.name for t in done_list.tasks] == [done.name]
    high = await tasks.ListTasks(
        pb.ListTasksRequest(filter="priority = TASK_PRIORITY_NORMAL", order_by="due_time desc", page_size=2),
        metadata=rep,
    )
    assert [t.subject for t in high.tasks] == ["tomorrow", "later_today"] and high.next_page_token
    rest = await tasks.ListTasks(
        pb.ListTasksRequest(
            filter="priority = TASK_PRIORITY_NORMAL",
            order_by="due_time desc",
            page_size=10,
            page_token=high.next_page_token,
        ),
        metadata=rep,
    )
    assert [t.subject for t in rest.tasks] == ["earlier_today", "yesterday", "done overdue"]
    # In UTC the calendar day can differ; an unknown zone is INVALID_ARGUMENT on time_zone.
    bad = await expect_error(
        tasks.ListTasks(pb.ListTasksRequest(view=pb.TASK_VIEW_TODAY, time_zone="Mars/Olympus"), metadata=rep),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "time_zone" in bad.field_violations


async def test_scope_assignee_or_owner_own_manager_team_admin_all(tasks, as_user):
    tag = uuid.uuid4().hex[:6]
    bob = as_user("sales_rep", f"bob-{tag}", team=f"east-{tag}")
    carol = as_user("sales_rep", f"carol-{tag}", team=f"east-{tag}")
    dave = as_user("sales_rep", f"dave-{tag}", team=f"west-{tag}")
    east_manager = as_user("sales_manager", f"em-{tag}", team=f"east-{tag}")
    west_manager = as_user("sales_manager", f"wm-{tag}", team=f"west-{tag}")
    due = ts(datetime.now(UTC) + timedelta(days=2))
    # Bob creates a task and assigns it to Carol: both see it (owner / assignee).
    task = await tasks.CreateTask(
        pb.CreateTaskRequest(task=pb.Task(subject="handover", due_time=due, assignee=f"carol-{tag}")),
        metadata=bob,
    )
    assert (task.owner, task.assignee, task.team) == (f"bob-{tag}", f"carol-{tag}", f"east-{tag}")
    for who in (bob, carol, east_manager, as_user("admin", "root", team="")):
        assert (await tasks.GetTask(pb.GetTaskRequest(name=task.name), metadata=who)).name == task.name
    for who in (dave, west_manager):
        await expect_error(
            tasks.GetTask(pb.GetTaskRequest(name=task.name), metadata=who), grpc.StatusCode.NOT_FOUND
        )
        listed = await tasks.ListTasks(pb.ListTasksRequest(filter=f'owner = "bob-{tag}"'), metadata=who)
        assert list(listed.tasks) == []
    # Carol (assignee) can complete it; Dave cannot even see it to complete it.
    await expect_error(
        tasks.CompleteTask(pb.CompleteTaskRequest(name=task.name), metadata=dave), grpc.StatusCode.NOT_FOUND
    )
    done = await tasks.CompleteTask(pb.CompleteTaskRequest(name=task.name), metadata=carol)
    assert done.done
    # A rep cannot create a task neither owned by nor assigned to themselves.
    denied = await expect_error(
        tasks.CreateTask(
            pb.CreateTaskRequest(
                task=pb.Task(subject="x", due_time=due, owner=f"dave-{tag}", assignee=f"dave-{tag}")
            ),
            metadata=bob,
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert denied.reason == "OWNER_OUTSIDE_SCOPE"
    # A manager may assign within the team; a stale etag is ABORTED.
    await expect_error(
        tasks.UpdateTask(
            pb.UpdateTaskRequest(
                task=pb.Task(name=task.name, assignee=f"bob-{tag}", etag=task.etag),
                update_mask=field_mask_pb2.FieldMask(paths=["assignee"]),
            ),
            metadata=east_manager,
        ),
        grpc.StatusCode.ABORTED,
    )
    reassigned = await tasks.UpdateTask(
        pb.UpdateTaskRequest(
            task=pb.Task(name=task.name, assignee=f"bob-{tag}", etag=done.etag),
            update_mask=field_mask_pb2.FieldMask(paths=["assignee"]),
        ),
        metadata=east_manager,
    )
    assert reassigned.assignee == f"bob-{tag}"
    # Carol is no longer owner or assignee: out of her scope now.
    await expect_error(
        tasks.GetTask(pb.GetTaskRequest(name=task.name), metadata=carol), grpc.StatusCode.NOT_FOUND
    )
    # Finance has no task permission at all.
    await expect_error(
        tasks.ListTasks(pb.ListTasksRequest(), metadata=as_user("finance", "fin", team="")),
        grpc.StatusCode.PERMISSION_DENIED,
    )


async def test_invalid_input_is_invalid_argument_with_field_paths(tasks, as_user):
    rep = as_user("sales_rep", "bob", team="east")
    shape = await expect_error(
        tasks.CreateTask(
            pb.CreateTaskRequest(
                task=pb.Task(subject="x" * 201, related="accounts/1", assignee="a" * 129), request_id="nope"
            ),
            metadata=rep,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert {"task.subject", "task.related", "task.assignee", "request_id"} <= set(shape.field_violations)
    domain = await expect_error(
        tasks.CreateTask(pb.CreateTaskRequest(task=pb.Task(remind_before=minutes(-5))), metadata=rep),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert set(domain.field_violations) == {"task.subject", "task.due_time", "task.remind_before"}
    task = await tasks.CreateTask(
        pb.CreateTaskRequest(task=pb.Task(subject="ok", due_time=ts(datetime.now(UTC)))), metadata=rep
    )
    mask = await expect_error(
        tasks.UpdateTask(
            pb.UpdateTaskRequest(
                task=pb.Task(name=task.name), update_mask=field_mask_pb2.FieldMask(paths=["done", "colour"])
            ),
            metadata=rep,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert set(mask.field_violations) == {"update_mask.paths[0]", "update_mask.paths[1]"}
    cleared = await expect_error(
        tasks.UpdateTask(
            pb.UpdateTaskRequest(
                task=pb.Task(name=task.name),
                update_mask=field_mask_pb2.FieldMask(paths=["subject", "due_time"]),
            ),
            metadata=rep,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert set(cleared.field_violations) == {"task.subject", "task.due_time"}
    for bad in ("done = maybe", "colour = 1", "priority = TASK_PRIORITY_MEGA"):
        await expect_error(
            tasks.ListTasks(pb.ListTasksRequest(filter=bad), metadata=rep), grpc.StatusCode.INVALID_ARGUMENT
        )
    await expect_error(
        tasks.ListTasks(pb.ListTasksRequest(order_by="subject"), metadata=rep),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    await expect_error(
        tasks.ReopenTask(pb.ReopenTaskRequest(name=task.name), metadata=rep),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
