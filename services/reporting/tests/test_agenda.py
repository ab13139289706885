"""The agenda (待办) from events on the real streams (SQLite and PostgreSQL): every source makes its
reminder, the completing event removes it, redeliveries and repeats never duplicate, an approval
for a role shows for every holder (never its owner); GetAgenda's scope; WatchAgenda pushes a new
reminder over a real gRPC channel within a bounded wait."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.type import date_pb2
from test_service_projection import eventually, publish, ts, uid

from crm.common.v1 import money_pb2
from crm.contract.v1 import common_pb2 as cc
from crm.contract.v1 import events_pb2 as ct
from crm.customer.v1 import pool_events_pb2 as pool
from crm.reporting.v1 import agenda_service_pb2 as pb
from crm.reporting.v1 import agenda_service_pb2_grpc as pb_grpc
from crm.sales.v1 import events_pb2 as sales
from crm.servicedesk.v1 import common_pb2 as sdc
from crm.servicedesk.v1 import events_pb2 as sd

pytestmark = pytest.mark.asyncio(loop_scope="session")

K = pb.AgendaItemKind


def date_pb(d) -> date_pb2.Date:
    return date_pb2.Date(year=d.year, month=d.month, day=d.day)


def money(amount: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code="CNY", amount_minor=amount)


class Publisher:
    """Publishes on the source's stream and remembers (subject, payload, resource, time, id) to redeliver."""

    def __init__(self, js) -> None:
        self.js = js
        self.sent: list[tuple] = []

    async def __call__(self, source: str, subject: str, payload, resource: str, when: datetime) -> None:
        event_id = await publish(self.js, subject, payload, resource, when, source=source)
        self.sent.append((source, subject, payload, resource, when, event_id))

    async def redeliver(self) -> None:
        for source, subject, payload, resource, when, event_id in self.sent:
            await publish(self.js, subject, payload, resource, when, source=source, event_id=event_id)


async def agenda_of(stub, metadata, user: str = "") -> pb.Agenda:
    return await stub.GetAgenda(pb.GetAgendaRequest(user=user), metadata=metadata)


async def wait_agenda(stub, metadata, expected: set, user: str = "") -> pb.Agenda:
    async def check():
        agenda = await agenda_of(stub, metadata, user)
        return agenda if {(i.kind, i.resource) for i in agenda.items} == expected else None

    agenda = await eventually(check)
    assert agenda, (expected, await agenda_of(stub, metadata, user))
    return agenda


async def test_every_source_makes_its_reminder_and_completion_removes_it(  # noqa: PLR0915
    reporting_service, channel, as_user
):
    js = reporting_service.infrastructure.js
    send = Publisher(js)
    stub = pb_grpc.AgendaServiceStub(channel)
    team, rita, other = f"east-{uid()}", f"rita-{uid()}", f"olga-{uid()}"
    now = datetime.now(UTC).replace(microsecond=0)
    today = now.date()
    c1, c2 = f"customers/{uid()}", f"customers/{uid()}"
    task, lead = f"tasks/{uid()}", f"leads/{uid()}"
    contract = f"contracts/{uid()}"
    i1, i2 = f"{contract}/installments/1", f"{contract}/installments/2"
    a_user, a_role = f"approvals/{uid()}", f"approvals/{uid()}"
    tk1, tk2 = f"tickets/{uid()}", f"tickets/{uid()}"

    def inst(name, due):
        return ct.InstallmentSnapshot(
            name=name,
            contract=contract,
            customer=c1,
            due_date=date_pb(due),
            amount=money(5000),
            paid_amount=money(1000),
            owner=rita,
            team=team,
        )

    def ticket(name, status=sdc.TICKET_STATUS_OPEN):
        return sd.TicketSnapshot(
            name=name, number="T-1", customer=c2, assignee=rita, team=team, status=status
        )

    snapshot = ct.ContractSnapshot(
        name=contract,
        number="HT-1",
        customer=c1,
        owner=rita,
        team=team,
        amount=money(90000),
        end_date=date_pb(today + timedelta(days=3)),
    )
    await send(
        "customer",
        "crm.customer.follow_up.due",
        pool.FollowUpDue(customer=c1, owner=rita, next_follow_up_time=ts(now + timedelta(hours=1))),
        c1,
        now,
    )
    await send(
        "customer",
        "crm.customer.customer.reclaim_warning",
        pool.ReclaimWarning(customer=c2, owner=rita, team=team, reclaim_time=ts(now + timedelta(days=2))),
        c2,
        now,
    )
    await send(
        "sales",
        "crm.sales.task.due",
        sales.TaskDue(task=task, assignee=rita, due_time=ts(now - timedelta(hours=1)), related=c1),
        task,
        now,
    )
    await send(
        "sales",
        "crm.sales.lead.assigned",
        sales.LeadAssigned(
            lead=sales.LeadSnapshot(name=lead, owner=rita, team=team, create_time=ts(now)), to_owner=rita
        ),
        lead,
        now,
    )
    await send(
        "contract",
        "crm.contract.contract.renewal_due",
        ct.ContractRenewalDue(contract=snapshot, days_left=3),
        contract,
        now,
    )
    await send(
        "contract",
        "crm.contract.installment.due",
        ct.PaymentDue(installment=inst(i1, today + timedelta(days=2)), days_until_due=2),
        i1,
        now,
    )
    await send(
        "contract",
        "crm.contract.installment.overdue",
        ct.PaymentOverdue(installment=inst(i2, today - timedelta(days=1))),
        i2,
        now,
    )
    await send(
        "contract",
        "crm.contract.approval.requested",
        ct.ApprovalRequested(
            approval=a_user,
            target=f"contracts/{uid()}",
            step=1,
            approver_kind=cc.APPROVER_KIND_USER,
            approver_user=rita,
            owner=other,
            team=team,
            amount=money(1),
        ),
        a_user,
        now,
    )
    await send(
        "contract",
        "crm.contract.approval.requested",
        ct.ApprovalRequested(
            approval=a_role,
            target=contract,
            step=1,
            approver_kind=cc.APPROVER_KIND_ROLE,
            approver_role="finance",
            owner=rita,
            team=team,
            amount=money(2),
        ),
        a_role,
        now,
    )
    await send(
        "servicedesk",
        "crm.servicedesk.sla.warning",
        sd.SlaWarning(
            ticket=ticket(tk1), metric=sdc.SLA_METRIC_FIRST_RESPONSE, due_time=ts(now + timedelta(minutes=30))
        ),
        tk1,
        now,
    )
    await send(
        "servicedesk",
        "crm.servicedesk.sla.breached",
        sd.SlaBreached(
            ticket=ticket(tk2), metric=sdc.SLA_METRIC_RESOLUTION, due_time=ts(now), breach_time=ts(now)
        ),
        tk2,
        now,
    )

    me = as_user("sales_rep", rita, team=team)
    expected = {
        (K.AGENDA_ITEM_KIND_FOLLOW_UP_DUE, c1),
        (K.AGENDA_ITEM_KIND_RECLAIM_WARNING, c2),
        (K.AGENDA_ITEM_KIND_TASK_DUE, task),
        (K.AGENDA_ITEM_KIND_NEW_LEAD, lead),
        (K.AGENDA_ITEM_KIND_CONTRACT_EXPIRING, contract),
        (K.AGENDA_ITEM_KIND_RECEIVABLE_DUE, i1),
        (K.AGENDA_ITEM_KIND_RECEIVABLE_OVERDUE, i2),
        (K.AGENDA_ITEM_KIND_APPROVAL_WAITING, a_user),
        (K.AGENDA_ITEM_KIND_TICKET_NEAR_BREACH, tk1),
        (K.AGENDA_ITEM_KIND_TICKET_BREACHED, tk2),
    }
    agenda = await wait_agenda(stub, me, expected)
    assert agenda.user == rita and agenda.HasField("as_of")
    # Overdue first (task, overdue installment, breached ticket), then by due time.
    overdue = [i.overdue for i in agenda.items]
    assert overdue == sorted(overdue, reverse=True) and sum(overdue) == 3
    due_of_rest = [i.due_time.ToDatetime() for i in agenda.items if not i.overdue]
    assert due_of_rest == sorted(due_of_rest)
    [receivable] = [i for i in agenda.items if i.resource == i1]
    assert (receivable.amount.currency_code, receivable.amount.amount_minor) == ("CNY", 4000)
    assert len({i.id for i in agenda.items}) == len(agenda.items)

    # A role's approval waits for every holder of the role, never for its owner (rita).
    for holder in (f"fay-{uid()}", f"fin-{uid()}"):
        mine = await wait_agenda(
            stub, as_user("finance", holder, team="finance"), {(K.AGENDA_ITEM_KIND_APPROVAL_WAITING, a_role)}
        )
        assert mine.items[0].amount.amount_minor == 2

    # Redelivery of every event, and a repeated reminder (a new event id), add nothing.
    await send.redeliver()
    await send(
        "customer",
        "crm.customer.follow_up.due",
        pool.FollowUpDue(customer=c1, owner=rita, next_follow_up_time=ts(now + timedelta(hours=1))),
        c1,
        now + timedelta(seconds=1),
    )
    await asyncio.sleep(1.5)
    again = await wait_agenda(stub, me, expected)
    assert len(again.items) == len(expected)

    # The completing events.
    later = now + timedelta(minutes=5)
    await send(
        "customer",
        "crm.customer.follow_up.logged",
        pool.FollowUpLogged(
            follow_up=f"{c1}/followUps/{uid()}", customer=c1, author=rita, follow_up_time=ts(later)
        ),
        c1,
        later,
    )
    await send(
        "customer",
        "crm.customer.customer.transferred",
        pool.OwnershipChanged(customer=c2, from_owner=rita, to_owner=other, to_team=team),
        c2,
        later,
    )
    await send(
        "sales",
        "crm.sales.lead.converted",
        sales.LeadConverted(lead=sales.LeadSnapshot(name=lead, owner=rita), customer=c1),
        lead,
        later,
    )
    await send(
        "contract",
        "crm.contract.contract.renewed",
        ct.ContractRenewed(contract=contract, renewal=snapshot),
        contract,
        later,
    )
    for name, due in ((i1, today + timedelta(days=2)), (i2, today - timedelta(days=1))):
        await send(
            "contract",
            "crm.contract.installment.paid",
            ct.InstallmentPaid(installment=inst(name, due)),
            name,
            later,
        )
    for approval in (a_user, a_role):
        await send(
            "contract",
            "crm.contract.approval.completed",
            ct.ApprovalCompleted(approval=approval, state=cc.APPROVAL_STATE_APPROVED),
            approval,
            later,
        )
    for name in (tk1, tk2):
        await send(
            "servicedesk",
            "crm.servicedesk.ticket.status_changed",
            sd.TicketStatusChanged(ticket=ticket(name, sdc.TICKET_STATUS_RESOLVED)),
            name,
            later,
        )
    await wait_agenda(stub, me, {(K.AGENDA_ITEM_KIND_TASK_DUE, task)})
    await wait_agenda(stub, as_user("finance", f"fay-{uid()}", team="finance"), set())
    # An older event arriving after the completion does not bring a reminder back.
    await send(
        "contract",
        "crm.contract.installment.overdue",
        ct.PaymentOverdue(installment=inst(i2, today - timedelta(days=1))),
        i2,
        now,
    )
    await asyncio.sleep(1.5)
    await wait_agenda(stub, me, {(K.AGENDA_ITEM_KIND_TASK_DUE, task)})


async def test_task_completed_deleted_rescheduled_or_reopened_updates_its_reminder(
    reporting_service, channel, as_user
):
    """The sales task events after TaskDue: completion and deletion remove the reminder, a change
    with the reminder passed moves it (new due time, new assignee), one that moves the reminder
    into the future hides it until its next TaskDue, reopening brings it back — and an older
    TaskDue arriving after any of them changes nothing."""
    js = reporting_service.infrastructure.js
    send = Publisher(js)
    stub = pb_grpc.AgendaServiceStub(channel)
    team, tina, leo = f"south-{uid()}", f"tina-{uid()}", f"leo-{uid()}"
    now = datetime.now(UTC).replace(microsecond=0)
    done, moved, deleted, snoozed, reopened = (f"tasks/{uid()}" for _ in range(5))
    customer = f"customers/{uid()}"
    tina_me, leo_me = as_user("sales_rep", tina, team=team), as_user("sales_rep", leo, team=team)

    def due(task, at=now, assignee=tina, due_in=timedelta(hours=1)):
        return send(
            "sales",
            "crm.sales.task.due",
            sales.TaskDue(
                task=task, assignee=assignee, due_time=ts(now + due_in), related=customer, team=team
            ),
            task,
            at,
        )

    def snapshot(task, *, assignee=tina, due_in=timedelta(hours=1), remind=now, is_done=False):
        return sales.TaskSnapshot(
            name=task,
            assignee=assignee,
            owner=tina,
            team=team,
            due_time=ts(now + due_in),
            reminder_time=ts(remind),
            related=customer,
            done=is_done,
        )

    for task in (done, moved, snoozed, reopened):
        await due(task)
    await wait_agenda(
        stub, tina_me, {(K.AGENDA_ITEM_KIND_TASK_DUE, t) for t in (done, moved, snoozed, reopened)}
    )

    later = now + timedelta(minutes=1)
    await send(
        "sales",
        "crm.sales.task.completed",
        sales.TaskCompleted(task=snapshot(done, is_done=True)),
        done,
        later,
    )
    await send(
        "sales",
        "crm.sales.task.updated",
        sales.TaskUpdated(
            task=snapshot(moved, assignee=leo, due_in=timedelta(hours=5)),
            changed_fields=["assignee", "due_time"],
        ),
        moved,
        later,
    )
    # Deleted before its (older) TaskDue is delivered: it never shows.
    await send(
        "sales",
        "crm.sales.task.deleted",
        sales.TaskDeleted(task=deleted, assignee=tina, owner=tina, team=team),
        deleted,
        later,
    )
    await due(deleted)
    await send(
        "sales",
        "crm.sales.task.updated",
        sales.TaskUpdated(
            task=snapshot(snoozed, due_in=timedelta(days=2), remind=now + timedelta(days=1)),
            changed_fields=["due_time"],
        ),
        snoozed,
        later,
    )
    await send(
        "sales",
        "crm.sales.task.completed",
        sales.TaskCompleted(task=snapshot(reopened, is_done=True)),
        reopened,
        later,
    )
    await wait_agenda(stub, tina_me, set())
    [item] = (await wait_agenda(stub, leo_me, {(K.AGENDA_ITEM_KIND_TASK_DUE, moved)})).items
    assert item.due_time.ToDatetime(tzinfo=UTC) == now + timedelta(hours=5) and item.user == leo
    manager = as_user("sales_manager", f"mo-{uid()}", team=team)
    assert [i.resource for i in (await agenda_of(stub, manager, leo)).items] == [moved]

    # Older TaskDue events (and redeliveries of everything) arriving now change nothing.
    for task in (done, moved, deleted, snoozed, reopened):
        await due(task, at=now - timedelta(seconds=1))
    await send.redeliver()
    marker = f"tasks/{uid()}"
    await due(marker, at=later)
    await wait_agenda(stub, tina_me, {(K.AGENDA_ITEM_KIND_TASK_DUE, marker)})
    await wait_agenda(stub, leo_me, {(K.AGENDA_ITEM_KIND_TASK_DUE, moved)})

    # The snoozed reminder fires again; the reopened task (reminder passed) is back.
    again = now + timedelta(minutes=2)
    await due(snoozed, at=again, due_in=timedelta(days=2))
    await send(
        "sales",
        "crm.sales.task.reopened",
        sales.TaskReopened(task=snapshot(reopened)),
        reopened,
        again,
    )
    agenda = await wait_agenda(
        stub, tina_me, {(K.AGENDA_ITEM_KIND_TASK_DUE, t) for t in (marker, snoozed, reopened)}
    )
    assert len(agenda.items) == 3


async def test_agenda_scope_and_watch(reporting_service, channel, as_user):
    js = reporting_service.infrastructure.js
    stub = pb_grpc.AgendaServiceStub(channel)
    team, wes = f"west-{uid()}", f"wes-{uid()}"
    now = datetime.now(UTC).replace(microsecond=0)
    first = f"tasks/{uid()}"
    await publish(
        js,
        "crm.sales.lead.assigned",
        sales.LeadAssigned(lead=sales.LeadSnapshot(name=first, owner=wes, team=team), to_owner=wes),
        first,
        now,
        source="sales",
    )
    await wait_agenda(stub, as_user("sales_rep", wes, team=team), {(K.AGENDA_ITEM_KIND_NEW_LEAD, first)})

    # A manager of the team and an admin see a member's agenda; another rep and another team's manager do not.
    for metadata in (as_user("sales_manager", f"mia-{uid()}", team=team), as_user("admin", "root")):
        assert [i.resource for i in (await agenda_of(stub, metadata, wes)).items] == [first]
    for metadata in (
        as_user("sales_rep", f"rob-{uid()}", team=team),
        as_user("sales_manager", f"max-{uid()}", team="elsewhere"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await agenda_of(stub, metadata, wes)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED

    # WatchAgenda: the current item, then a new one within a bounded wait after its event.
    call = stub.WatchAgenda(
        pb.WatchAgendaRequest(include_current=True), metadata=as_user("sales_rep", wes, team=team)
    )
    try:
        current = await asyncio.wait_for(call.read(), 10)
        assert current.resource == first and current.user == wes
        task = f"tasks/{uid()}"
        await publish(
            js,
            "crm.sales.task.due",
            sales.TaskDue(task=task, assignee=wes, due_time=ts(now + timedelta(hours=2))),
            task,
            datetime.now(UTC),
            source="sales",
        )
        pushed = await asyncio.wait_for(call.read(), 15)
        assert (pushed.kind, pushed.resource, pushed.user) == (K.AGENDA_ITEM_KIND_TASK_DUE, task, wes)
        # `until` bounds the window: the task due in two hours is not in the next hour's agenda.
        me = as_user("sales_rep", wes, team=team)
        soon = await stub.GetAgenda(pb.GetAgendaRequest(until=ts(now + timedelta(hours=1))), metadata=me)
        assert [i.resource for i in soon.items] == [first]
        week = await stub.GetAgenda(pb.GetAgendaRequest(), metadata=me)
        assert [i.resource for i in week.items] == [first, task]
    finally:
        call.cancel()


async def test_watch_ends_when_the_server_stops(database_url, nats_server, jwt_keys, as_user):
    """An open WatchAgenda does not hold the shutdown: it is cancelled at the end of the grace period."""
    from reporting_testkit import reporting_settings

    from crm_reporting.bootstrap import build
    from crm_shared.runtime import start_service

    running = await start_service(
        reporting_settings(database_url, nats_server.url, jwt_keys, shutdown_grace_seconds=1), build
    )
    stopped = False
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = pb_grpc.AgendaServiceStub(channel)
            call = stub.WatchAgenda(pb.WatchAgendaRequest(), metadata=as_user("sales_rep", f"sue-{uid()}"))
            await asyncio.sleep(1.0)  # the stream is open and polling
            started = asyncio.get_running_loop().time()
            await asyncio.wait_for(running.stop(1), 10)
            stopped = True
            assert asyncio.get_running_loop().time() - started < 6
            with pytest.raises(grpc.aio.AioRpcError):
                await asyncio.wait_for(call.read(), 5)
    finally:
        if not stopped:
            await running.stop(1)
