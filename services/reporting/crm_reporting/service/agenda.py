"""The agenda (待办): reminders projected from every service's events, and the GetAgenda /
WatchAgenda use cases.

Each handler turns one event into `put` (a reminder appears or changes) or `complete` (the work
was done: it disappears; `put(done=True)` hides it only until a newer event, e.g. a task whose
reminder was moved into the future until its next TaskDue). Ids come from
crm_reporting.domain.agenda; rows carry the newest event time, so redeliveries and late events
never duplicate or resurrect a reminder.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from crm.contract.v1 import events_pb2 as ct
from crm.customer.v1 import pool_events_pb2 as pool
from crm.sales.v1 import events_pb2 as sales
from crm.servicedesk.v1 import events_pb2 as sd
from crm_reporting.adapters import agenda_repository as repo
from crm_reporting.domain import agenda as rules
from crm_reporting.domain.service_metrics import DONE_STATUSES
from crm_shared.access.policy import Scope
from crm_shared.errors import PermissionDenied
from crm_shared.events.envelope import occurred_at

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
SLA_KINDS = frozenset({rules.TICKET_NEAR_BREACH, rules.TICKET_BREACHED})


def _ts(message, name: str) -> datetime | None:
    if not message.HasField(name):
        return None
    return getattr(message, name).ToDatetime(tzinfo=UTC)


def _date(message, name: str) -> datetime | None:
    if not message.HasField(name):
        return None
    value = getattr(message, name)
    if not value.year:
        return None
    return datetime(value.year, value.month or 1, value.day or 1, tzinfo=UTC)


def _money(message, name: str) -> tuple[str, int]:
    if not message.HasField(name):
        return "", 0
    money = getattr(message, name)
    return money.currency_code, int(money.amount_minor)


# --- customer -----------------------------------------------------------------------------------


async def follow_up_due(uow, envelope, p: pool.FollowUpDue) -> None:
    when = occurred_at(envelope)
    await repo.put(
        uow.session,
        id=rules.follow_up_id(p.customer),
        kind=rules.FOLLOW_UP_DUE,
        event_time=when,
        user=p.owner,
        resource=p.customer,
        customer=p.customer,
        title="Follow-up due",
        due_time=_ts(p, "next_follow_up_time") or when,
    )


async def follow_up_logged(uow, envelope, p: pool.FollowUpLogged) -> None:
    """The follow-up was done (the due one disappears); a planned next one becomes the reminder.
    Activity also lifts the reclaim warning."""
    when = occurred_at(envelope)
    planned = _ts(p, "next_follow_up_time")
    if planned is not None:
        await repo.put(
            uow.session,
            id=rules.follow_up_id(p.customer),
            kind=rules.FOLLOW_UP_DUE,
            event_time=when,
            user=p.author,
            resource=p.customer,
            customer=p.customer,
            title="Follow-up planned",
            due_time=planned,
        )
    else:
        await repo.complete(
            uow.session, [rules.follow_up_id(p.customer)], kind=rules.FOLLOW_UP_DUE, event_time=when
        )
    await repo.complete(
        uow.session, [rules.reclaim_id(p.customer)], kind=rules.RECLAIM_WARNING, event_time=when
    )


async def reclaim_warning(uow, envelope, p: pool.ReclaimWarning) -> None:
    await repo.put(
        uow.session,
        id=rules.reclaim_id(p.customer),
        kind=rules.RECLAIM_WARNING,
        event_time=occurred_at(envelope),
        user=p.owner,
        team=p.team,
        resource=p.customer,
        customer=p.customer,
        title="Customer about to be reclaimed",
        due_time=_ts(p, "reclaim_time"),
    )


async def ownership_changed(uow, envelope, p: pool.OwnershipChanged) -> None:
    """The reclaim warning is moot; the planned follow-up moves to the new owner (or goes with it
    to the pool)."""
    when = occurred_at(envelope)
    await repo.complete(
        uow.session, [rules.reclaim_id(p.customer)], kind=rules.RECLAIM_WARNING, event_time=when
    )
    if p.to_owner:
        await repo.reassign(
            uow.session,
            resource=p.customer,
            kinds={rules.FOLLOW_UP_DUE},
            user=p.to_owner,
            team=p.to_team,
            event_time=when,
        )
    else:
        await repo.complete(
            uow.session, [rules.follow_up_id(p.customer)], kind=rules.FOLLOW_UP_DUE, event_time=when
        )


# --- sales --------------------------------------------------------------------------------------


def _customer_of(related: str) -> str:
    return related if related.startswith("customers/") else ""


async def task_due(uow, envelope, p: sales.TaskDue) -> None:
    await repo.put(
        uow.session,
        id=rules.task_id(p.task),
        kind=rules.TASK_DUE,
        event_time=occurred_at(envelope),
        user=p.assignee,
        team=p.team,
        resource=p.task,
        customer=_customer_of(p.related),
        title="Task due",
        due_time=_ts(p, "due_time"),
    )


async def task_changed(uow, envelope, p) -> None:
    """TaskUpdated / TaskCompleted / TaskReopened: the task's state after the change. Open with its
    reminder moment passed, the reminder moves to the new due time and assignee; otherwise it is
    hidden (done, or its moved reminder not due yet) as a row of this event time — an older TaskDue
    arriving late does not bring it back, a newer one (the moved reminder firing) does."""
    t, when = p.task, occurred_at(envelope)
    await repo.put(
        uow.session,
        id=rules.task_id(t.name),
        kind=rules.TASK_DUE,
        event_time=when,
        user=t.assignee,
        team=t.team,
        resource=t.name,
        customer=_customer_of(t.related),
        title="Task due",
        due_time=_ts(t, "due_time"),
        done=not rules.task_on_agenda(done=t.done, reminder_time=_ts(t, "reminder_time"), event_time=when),
    )


async def task_deleted(uow, envelope, p: sales.TaskDeleted) -> None:
    await repo.complete(
        uow.session,
        [rules.task_id(p.task)],
        kind=rules.TASK_DUE,
        event_time=occurred_at(envelope),
        resource=p.task,
    )


async def _new_lead(uow, envelope, lead: sales.LeadSnapshot, owner: str) -> None:
    when = occurred_at(envelope)
    if not owner:
        return
    await repo.put(
        uow.session,
        id=rules.lead_id(lead.name),
        kind=rules.NEW_LEAD,
        event_time=when,
        user=owner,
        team=lead.team,
        resource=lead.name,
        title="New lead",
        due_time=_ts(lead, "create_time") or when,
    )


async def lead_created(uow, envelope, p: sales.LeadCreated) -> None:
    await _new_lead(uow, envelope, p.lead, p.lead.owner)


async def lead_assigned(uow, envelope, p: sales.LeadAssigned) -> None:
    await _new_lead(uow, envelope, p.lead, p.to_owner or p.lead.owner)


async def lead_closed(uow, envelope, p) -> None:
    """LeadConverted / LeadDisqualified."""
    await repo.complete(
        uow.session, [rules.lead_id(p.lead.name)], kind=rules.NEW_LEAD, event_time=occurred_at(envelope)
    )


# --- contract -----------------------------------------------------------------------------------


async def approval_requested(uow, envelope, p: ct.ApprovalRequested) -> None:
    spec = rules.approver_spec(
        kind=int(p.approver_kind), role=p.approver_role, user=p.approver_user, team=p.team
    )
    currency, amount = _money(p, "amount")
    when = occurred_at(envelope)
    await repo.put(
        uow.session,
        id=rules.approval_id(p.approval),
        kind=rules.APPROVAL_WAITING,
        event_time=when,
        user=spec.user,
        approver_role=spec.role,
        approver_team=spec.team,
        owner=p.owner,
        team=p.team,
        resource=p.approval,
        title=f"Approval step {p.step} waiting",
        due_time=when,
        currency=currency,
        amount_minor=amount,
        step=max(p.step, 1),
    )


async def approval_completed(uow, envelope, p: ct.ApprovalCompleted) -> None:
    await repo.complete(
        uow.session,
        [rules.approval_id(p.approval)],
        kind=rules.APPROVAL_WAITING,
        event_time=occurred_at(envelope),
    )


async def renewal_due(uow, envelope, p: ct.ContractRenewalDue) -> None:
    c = p.contract
    currency, amount = _money(c, "amount")
    await repo.put(
        uow.session,
        id=rules.renewal_id(c.name),
        kind=rules.CONTRACT_EXPIRING,
        event_time=occurred_at(envelope),
        user=c.owner,
        team=c.team,
        resource=c.name,
        customer=c.customer,
        title=f"Contract {c.number} expiring in {p.days_left} days",
        due_time=_date(c, "end_date"),
        currency=currency,
        amount_minor=amount,
    )


async def _renewal_done(uow, envelope, contract: str) -> None:
    await repo.complete(
        uow.session,
        [rules.renewal_id(contract)],
        kind=rules.CONTRACT_EXPIRING,
        event_time=occurred_at(envelope),
    )


async def contract_renewed(uow, envelope, p: ct.ContractRenewed) -> None:
    await _renewal_done(uow, envelope, p.contract)


async def contract_terminated(uow, envelope, p: ct.ContractTerminated) -> None:
    await _renewal_done(uow, envelope, p.contract.name)


async def contract_deleted(uow, envelope, p: ct.ContractDeleted) -> None:
    await _renewal_done(uow, envelope, p.contract)


async def _receivable(uow, envelope, inst: ct.InstallmentSnapshot, kind: int, title: str) -> None:
    currency, amount = _money(inst, "amount")
    _, paid = _money(inst, "paid_amount")
    await repo.put(
        uow.session,
        id=rules.installment_id(inst.name),
        kind=kind,
        event_time=occurred_at(envelope),
        user=inst.owner,
        team=inst.team,
        resource=inst.name,
        customer=inst.customer,
        title=title,
        due_time=_date(inst, "due_date"),
        currency=currency,
        amount_minor=max(amount - paid, 0),
    )


async def payment_due(uow, envelope, p: ct.PaymentDue) -> None:
    await _receivable(
        uow, envelope, p.installment, rules.RECEIVABLE_DUE, f"Installment due in {p.days_until_due} days"
    )


async def payment_overdue(uow, envelope, p: ct.PaymentOverdue) -> None:
    await _receivable(uow, envelope, p.installment, rules.RECEIVABLE_OVERDUE, "Installment overdue")


async def installment_paid(uow, envelope, p: ct.InstallmentPaid) -> None:
    await repo.complete(
        uow.session,
        [rules.installment_id(p.installment.name)],
        kind=rules.RECEIVABLE_DUE,
        event_time=occurred_at(envelope),
    )


# --- servicedesk --------------------------------------------------------------------------------


async def _sla(uow, envelope, p, kind: int, title: str) -> None:
    t = p.ticket
    await repo.put(
        uow.session,
        id=rules.sla_id(t.name, p.metric),
        kind=kind,
        event_time=occurred_at(envelope),
        user=t.assignee,
        team=t.team,
        resource=t.name,
        customer=t.customer,
        title=title,
        due_time=_ts(p, "due_time"),
    )


async def sla_warning(uow, envelope, p: sd.SlaWarning) -> None:
    await _sla(uow, envelope, p, rules.TICKET_NEAR_BREACH, f"Ticket {p.ticket.number} near SLA breach")


async def sla_breached(uow, envelope, p: sd.SlaBreached) -> None:
    await _sla(uow, envelope, p, rules.TICKET_BREACHED, f"Ticket {p.ticket.number} breached its SLA")


async def ticket_status_changed(uow, envelope, p: sd.TicketStatusChanged) -> None:
    if p.ticket.status in DONE_STATUSES:
        await repo.complete(
            uow.session,
            [rules.sla_id(p.ticket.name, m) for m in rules.SLA_METRICS],
            kind=rules.TICKET_NEAR_BREACH,
            event_time=occurred_at(envelope),
            resource=p.ticket.name,
        )


async def ticket_commented(uow, envelope, p: sd.TicketCommented) -> None:
    """A reply that met a response target ends that target's reminder."""
    if p.responded_metric:
        await repo.complete(
            uow.session,
            [rules.sla_id(p.ticket.name, p.responded_metric)],
            kind=rules.TICKET_NEAR_BREACH,
            event_time=occurred_at(envelope),
            resource=p.ticket.name,
        )


async def ticket_assigned(uow, envelope, p: sd.TicketAssigned) -> None:
    await repo.reassign(
        uow.session,
        resource=p.ticket.name,
        kinds=SLA_KINDS,
        user=p.ticket.assignee,
        team=p.ticket.team,
        event_time=occurred_at(envelope),
    )


def register(registry, app) -> None:
    registry.on("customer", pool.FollowUpDue, follow_up_due)
    registry.on("customer", pool.FollowUpLogged, follow_up_logged)
    registry.on("customer", pool.ReclaimWarning, reclaim_warning)
    registry.on("customer", pool.OwnershipChanged, ownership_changed)
    registry.on("sales", sales.TaskDue, task_due)
    registry.on("sales", sales.TaskUpdated, task_changed)
    registry.on("sales", sales.TaskCompleted, task_changed)
    registry.on("sales", sales.TaskReopened, task_changed)
    registry.on("sales", sales.TaskDeleted, task_deleted)
    registry.on("sales", sales.LeadCreated, lead_created)
    registry.on("sales", sales.LeadAssigned, lead_assigned)
    registry.on("sales", sales.LeadConverted, lead_closed)
    registry.on("sales", sales.LeadDisqualified, lead_closed)
    registry.on("contract", ct.ApprovalRequested, approval_requested)
    registry.on("contract", ct.ApprovalCompleted, approval_completed)
    registry.on("contract", ct.ContractRenewalDue, renewal_due)
    registry.on("contract", ct.ContractRenewed, contract_renewed)
    registry.on("contract", ct.ContractTerminated, contract_terminated)
    registry.on("contract", ct.ContractDeleted, contract_deleted)
    registry.on("contract", ct.PaymentDue, payment_due)
    registry.on("contract", ct.PaymentOverdue, payment_overdue)
    registry.on("contract", ct.InstallmentPaid, installment_paid)
    registry.on("servicedesk", sd.SlaWarning, sla_warning)
    registry.on("servicedesk", sd.SlaBreached, sla_breached)
    registry.on("servicedesk", sd.TicketStatusChanged, ticket_status_changed)
    registry.on("servicedesk", sd.TicketCommented, ticket_commented)
    registry.on("servicedesk", sd.TicketAssigned, ticket_assigned)


# --- use cases ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgendaView:
    user: str
    items: list[rules.Item]
    as_of: datetime | None


async def _predicate(session, app, principal, user: str):
    """Which rows the caller may see as `user`'s agenda (PERMISSION_DENIED outside their scope)."""
    grant = app.policy.grant(principal, "agenda", "read")
    target = user or principal.subject
    if target == principal.subject:
        return target, repo.for_principal(principal.subject, principal.roles, principal.team)
    if grant.scope is Scope.ALL:
        return target, repo.for_user(target)
    if grant.scope is Scope.TEAM and grant.team:
        if await repo.has_items_outside_team(session, target, grant.team):
            raise _denied(target)
        return target, repo.for_user(target, team=grant.team)
    raise _denied(target)


def _denied(user: str) -> PermissionDenied:
    return PermissionDenied(
        f"the agenda of {user!r} is outside your scope", reason="AGENDA_SCOPE_DENIED", metadata={"user": user}
    )


def _with_overdue(item: rules.Item, now: datetime) -> rules.Item:
    return replace(item, overdue=rules.is_overdue(item.kind, item.due_time, now))


async def get_agenda(session, app, principal, *, user: str, until: datetime | None) -> AgendaView:
    now = app.clock.now()
    target, predicate = await _predicate(session, app, principal, user)
    until = until or rules.default_until(now)
    items = [i for i in await repo.open_items(session, predicate) if rules.visible(i, now=now, until=until)]
    return AgendaView(
        user=target,
        items=[_with_overdue(i, now) for i in rules.ordered(items, now)],
        as_of=await repo.as_of(session),
    )


async def watch_agenda(app, principal, *, user: str, include_current: bool) -> AsyncIterator[rules.Item]:
    """The current items (when include_current), then every reminder that appears or changes
    (a new version: id, user, newest event time) for the user, read every POLL_SECONDS.

    It sleeps between polls (no busy loop) and ends when the task is cancelled: the client
    cancelling, or the server stopping (cancelled at the end of the drain grace period).
    Reminders created and done between two polls are not pushed (they need nothing any more).
    """
    async with app.db.read_session() as session:
        _, predicate = await _predicate(session, app, principal, user)
        current = await repo.open_items(session, predicate)
    sent = {item.version for item in current}
    if include_current:
        now = app.clock.now()
        for item in rules.ordered(current, now):
            yield _with_overdue(item, now)
    while True:
        await asyncio.sleep(POLL_SECONDS)
        async with app.db.read_session() as session:
            items = await repo.open_items(session, predicate)
        now = app.clock.now()
        fresh = [item for item in items if item.version not in sent]
        for item in rules.ordered(fresh, now):
            yield _with_overdue(item, now)
        # Only what is still open can come back as "already sent" (bounded memory).
        sent = {item.version for item in items}
