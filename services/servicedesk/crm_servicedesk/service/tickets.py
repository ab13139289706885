"""Use cases for tickets: standard methods and the status moves (hold, resume, resolve, close, reopen).

Writes take a unit of work (rows, outbox events, audit records and durable timers commit
together); reads take a session. The caller's data scope goes into every query, so a ticket
outside it is simply NOT_FOUND. After every change that matters the SLA is recomputed in the
same unit of work (service/sla.py); resolving opens the CSAT survey and schedules the
auto-close timer, reopening closes the survey and cancels the timer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from crm_servicedesk.adapters.support_team_repository import SupportTeamRepository
from crm_servicedesk.adapters.ticket_filters import (
    DEFAULT_ORDER,
    ORDERABLE,
    TICKET_FILTERS,
    sort_keys,
    sort_values,
)
from crm_servicedesk.adapters.ticket_repository import TicketRepository
from crm_servicedesk.domain import tickets as rules
from crm_servicedesk.domain.tickets import SnapshotState, Ticket, TicketInput, TicketStatus
from crm_servicedesk.service import csat, sla
from crm_servicedesk.service.assignment import assign
from crm_servicedesk.service.customer_snapshots import (
    SnapshotOutcome,
    retry_delay,
    schedule_retry,
    with_outcome,
)
from crm_servicedesk.service.ticket_events import (
    emit_status_changed,
    emit_ticket_created,
    emit_ticket_updated,
    policy_of,
)
from crm_shared import timers
from crm_shared.access import Scope
from crm_shared.aip.etag import check_etag
from crm_shared.aip.fieldmask import resolve_update_mask
from crm_shared.aip.paging import Page, parse_list_request
from crm_shared.errors import NotFound, PermissionDenied, Violations
from crm_shared.ids import new_id
from crm_shared.principal import Principal

TICKETS = "tickets"
CUSTOMER_PORTAL_ROLE = "customer_portal"
AUTO_CLOSE_TIMER = "servicedesk.ticket.auto_close"

OUTPUT_ONLY_FIELDS = frozenset(
    {
        "name",
        "number",
        "status",
        "assignee",
        "team",  # changes through AssignTicket
        "customer_snapshot",
        "sla",
        "first_response_time",
        "resolve_time",
        "close_time",
        "reopen_count",
        "pending_reason",
        "resolution",
        "requester",
        "create_time",
        "update_time",
        "etag",
    }
)


def ticket_not_found(ticket_id: str) -> NotFound:
    # The same answer whether the ticket does not exist or is outside the caller's scope.
    name = f"tickets/{ticket_id}"
    return NotFound(f"{name} not found", reason="TICKET_NOT_FOUND", metadata={"resource": name})


def customer_facing(deps, principal: Principal) -> bool:
    """A customer_portal caller (acting for a customer) that cannot also work tickets as staff."""
    return (
        CUSTOMER_PORTAL_ROLE in principal.roles
        and deps.policy.scope(principal, TICKETS, "update") is Scope.NONE
    )


async def visible_ticket(
    session: AsyncSession, deps, principal: Principal, ticket_id: str, action: str, *, lock: bool = False
) -> Ticket:
    """The ticket if `action` on it is within the caller's scope, else NOT_FOUND."""
    grant = deps.policy.grant(principal, TICKETS, action)
    ticket = await TicketRepository(session).get(ticket_id, grant, lock=lock)
    if ticket is None:
        raise ticket_not_found(ticket_id)
    return ticket


async def get_ticket(session: AsyncSession, deps, principal: Principal, ticket_id: str) -> Ticket:
    return await visible_ticket(session, deps, principal, ticket_id, "read")


async def list_tickets(
    session: AsyncSession,
    deps,
    principal: Principal,
    *,
    page_size: int,
    page_token: str,
    filter_text: str,
    order_by: str,
) -> Page:
    grant = deps.policy.grant(principal, TICKETS, "read")
    request = parse_list_request(
        deps.page_tokens,
        collection=TICKETS,
        caller=principal.subject,
        page_size=page_size,
        page_token=page_token,
        filter_text=filter_text,
        filters=TICKET_FILTERS,
        order_by=order_by,
        orderable=ORDERABLE,
        default_order=DEFAULT_ORDER,
    )
    rows = await TicketRepository(session).list(
        grant,
        where=request.where,
        sort=sort_keys(request.order.fields),
        after=request.after,
        limit=request.limit + 1,
    )
    return request.page(rows, deps.page_tokens, key=lambda t: sort_values(t, request.order.fields))


# --- creating ---------------------------------------------------------------------------------------


def _queue_of(grant, data: TicketInput) -> str:
    """The team a new ticket enters: an agent's own team by default, and never another team's."""
    if grant.scope is not Scope.TEAM:
        return data.team
    team = data.team or grant.team
    if team != grant.team:
        raise PermissionDenied(
            f"you can only open tickets in your team's queue ({grant.team or 'none'})",
            reason="TEAM_OUTSIDE_SCOPE",
            metadata={"team": team},
        )
    return team


async def create_ticket(
    uow, deps, principal: Principal, data: TicketInput, snapshot: SnapshotOutcome
) -> Ticket:
    """A numbered NEW ticket with its snapshot (taken before this unit of work: see customer_snapshots).

    A PENDING snapshot schedules the retry timer. A team with an automatic strategy assigns the
    ticket at once (NEW -> OPEN).
    """
    grant = deps.policy.grant(principal, TICKETS, "create")
    data = replace(data, team=_queue_of(grant, data))
    repo = TicketRepository(uow.session)
    ticket = rules.new_ticket(
        data,
        ticket_id=new_id(),
        number="",
        requester=principal.subject,
        now=uow.now,
        violations=Violations(),
    )
    ticket.number = await repo.next_number()
    ticket = replace(with_outcome(ticket, snapshot, uow.now), row_version=1)  # not stored yet: version 1
    await repo.add(ticket)
    change = await sla.recompute(uow, ticket, event="created", actor=principal.subject)
    emit_ticket_created(uow, ticket, sla_policy=policy_of(change))
    if ticket.snapshot_state is SnapshotState.PENDING:
        await schedule_retry(
            uow, ticket.id, attempt=0, delay=retry_delay(0, deps.settings.snapshot_retry_max_seconds)
        )
    if ticket.team:
        team = await SupportTeamRepository(uow.session).get(ticket.team)
        if team is not None and team.strategy.automatic:
            ticket = await assign(uow, ticket, team=ticket.team, cause="created")
    return ticket


# --- changing ---------------------------------------------------------------------------------------


async def update_ticket(
    uow,
    deps,
    principal: Principal,
    ticket_id: str,
    data: TicketInput,
    mask: Sequence[str],
    etag: str,
) -> Ticket:
    fields = resolve_update_mask(mask, writable=rules.UPDATABLE_FIELDS, output_only=OUTPUT_ONLY_FIELDS)
    current = await visible_ticket(uow.session, deps, principal, ticket_id, "update", lock=True)
    check_etag(etag, current.id, current.row_version, resource=current.name)
    updated, changed = rules.update_ticket(current, data, fields, now=uow.now, violations=Violations())
    if not changed:
        return current
    await TicketRepository(uow.session).save(updated, current.row_version)
    change = await sla.recompute(uow, updated, event="updated", actor=principal.subject)
    emit_ticket_updated(uow, updated, changed, sla_policy=policy_of(change))
    if "customer" in changed and updated.snapshot_state is SnapshotState.PENDING:
        # Fetched by the retry timer right away (with the service identity), outside this request.
        await schedule_retry(uow, updated.id, attempt=0, delay=timedelta(0))
    return updated


async def assign_ticket(
    uow,
    deps,
    principal: Principal,
    ticket_id: str,
    *,
    strategy,
    assignee: str,
    team: str,
    etag: str,
) -> Ticket:
    current = await visible_ticket(uow.session, deps, principal, ticket_id, "assign", lock=True)
    check_etag(etag, current.id, current.row_version, resource=current.name)
    rules.require_status(current, "assign")
    return await assign(
        uow,
        current,
        team=team or current.team,
        assignee=assignee,
        strategy=strategy,
        require_assignee=strategy is not None and strategy.automatic,
    )


async def _status_move(uow, deps, principal: Principal, ticket_id: str, *, action: str, etag: str, move):
    """Load in scope, check the etag, apply `move`, save and announce; returns (before, after)."""
    permission = "reopen" if action == "reopen" else "status"
    current = await visible_ticket(uow.session, deps, principal, ticket_id, permission, lock=True)
    check_etag(etag, current.id, current.row_version, resource=current.name)
    updated = move(current)
    await TicketRepository(uow.session).save(updated, current.row_version)
    change = await sla.recompute(
        uow, updated, event="reopened" if action == "reopen" else "status", actor=principal.subject
    )
    emit_status_changed(
        uow, updated, previous_status=current.status, actor=principal.subject, sla_policy=policy_of(change)
    )
    return current, updated


async def hold_ticket(uow, deps, principal: Principal, ticket_id: str, *, reason: str, etag: str) -> Ticket:
    _, updated = await _status_move(
        uow, deps, principal, ticket_id, action="hold", etag=etag,
        move=lambda t: rules.hold(t, uow.now, reason=reason),
    )  # fmt: skip
    return updated


async def resume_ticket(uow, deps, principal: Principal, ticket_id: str, *, etag: str) -> Ticket:
    _, updated = await _status_move(
        uow, deps, principal, ticket_id, action="resume", etag=etag, move=lambda t: rules.resume(t, uow.now)
    )
    return updated


async def resolve_ticket(
    uow, deps, principal: Principal, ticket_id: str, *, resolution: str, etag: str
) -> Ticket:
    _, updated = await _status_move(
        uow, deps, principal, ticket_id, action="resolve", etag=etag,
        move=lambda t: rules.resolve(t, uow.now, resolution=resolution),
    )  # fmt: skip
    await csat.on_resolved(uow, updated)
    if deps.settings.auto_close_days > 0:
        due = uow.now + timedelta(days=deps.settings.auto_close_days)
        await timers.schedule(uow, AUTO_CLOSE_TIMER, updated.id, due)
    return updated


async def close_ticket(uow, deps, principal: Principal, ticket_id: str, *, etag: str) -> Ticket:
    _, updated = await _status_move(
        uow, deps, principal, ticket_id, action="close", etag=etag, move=lambda t: rules.close(t, uow.now)
    )
    await timers.cancel(uow, AUTO_CLOSE_TIMER, updated.id)
    return updated


async def reopen_ticket(uow, deps, principal: Principal, ticket_id: str, *, reason: str, etag: str) -> Ticket:
    _, updated = await _status_move(
        uow, deps, principal, ticket_id, action="reopen", etag=etag,
        move=lambda t: rules.reopen(t, uow.now, reason=reason),
    )  # fmt: skip
    await timers.cancel(uow, AUTO_CLOSE_TIMER, updated.id)
    await csat.on_reopened(uow, updated)
    return updated


async def auto_close(uow, ticket_id: str) -> None:
    """The auto-close timer: a ticket still RESOLVED closes (reopened or closed meanwhile: nothing)."""
    repo = TicketRepository(uow.session)
    current = await repo.get(ticket_id, lock=True)
    if current is None or current.status is not TicketStatus.RESOLVED:
        return
    updated = rules.close(current, uow.now)
    await repo.save(updated, current.row_version)
    change = await sla.recompute(uow, updated, event="status", actor=uow.actor_subject)
    emit_status_changed(
        uow, updated, previous_status=current.status, actor=uow.actor_subject, sla_policy=policy_of(change)
    )
