"""Tickets and their comments in the database; data scope applied inside every query.

Scope of tickets: ALL sees everything; TEAM (support agents) their team's queue OR the tickets
assigned to them in any team; OWN (customer_portal) the tickets they requested.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from crm_servicedesk.adapters.ticket_tables import document_counters, ticket_comments, tickets
from crm_servicedesk.domain.tickets import (
    ACTIVE_STATUSES,
    SnapshotState,
    Ticket,
    TicketChannel,
    TicketComment,
    TicketPriority,
    TicketStatus,
    TicketType,
)
from crm_shared.access import Scope, ScopeGrant
from crm_shared.access.sql import scope_predicate
from crm_shared.aip.paging import SortKey, keyset_after, keyset_order
from crm_shared.errors import Aborted

TICKET_NUMBER_KIND = "ticket"


def ticket_values(t: Ticket) -> dict[str, Any]:
    return {
        "id": t.id,
        "number": t.number,
        "type": t.type.value,
        "channel": t.channel.value,
        "subject": t.subject,
        "description": t.description,
        "priority": t.priority.value,
        "priority_rank": t.priority.rank + 1,
        "status": t.status.value,
        "customer": t.customer,
        "contact": t.contact,
        "assignee": t.assignee,
        "team": t.team,
        "tags": list(t.tags),
        "requester": t.requester,
        "snapshot_state": t.snapshot_state.value,
        "customer_name": t.customer_name,
        "customer_tier": t.customer_tier,
        "customer_lifecycle": t.customer_lifecycle,
        "customer_owner": t.customer_owner,
        "customer_team": t.customer_team,
        "snapshot_time": t.snapshot_time,
        "first_response_time": t.first_response_time,
        "resolve_time": t.resolve_time,
        "close_time": t.close_time,
        "reopen_count": t.reopen_count,
        "public_agent_replies": t.public_agent_replies,
        "pending_reason": t.pending_reason,
        "resolution": t.resolution,
        "create_time": t.create_time,
        "update_time": t.update_time,
        "row_version": t.row_version,
    }


def ticket_from_row(row: Any) -> Ticket:
    return Ticket(
        id=row["id"],
        number=row["number"],
        type=TicketType(row["type"]),
        channel=TicketChannel(row["channel"]),
        subject=row["subject"],
        description=row["description"],
        priority=TicketPriority(row["priority"]),
        status=TicketStatus(row["status"]),
        customer=row["customer"],
        contact=row["contact"],
        assignee=row["assignee"],
        team=row["team"],
        tags=list(row["tags"] or []),
        requester=row["requester"],
        snapshot_state=SnapshotState(row["snapshot_state"]),
        customer_name=row["customer_name"],
        customer_tier=row["customer_tier"],
        customer_lifecycle=row["customer_lifecycle"],
        customer_owner=row["customer_owner"],
        customer_team=row["customer_team"],
        snapshot_time=row["snapshot_time"],
        first_response_time=row["first_response_time"],
        resolve_time=row["resolve_time"],
        close_time=row["close_time"],
        reopen_count=row["reopen_count"],
        public_agent_replies=row["public_agent_replies"],
        pending_reason=row["pending_reason"],
        resolution=row["resolution"],
        create_time=row["create_time"],
        update_time=row["update_time"],
        row_version=row["row_version"],
    )


def _insert_for(session: AsyncSession):
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


async def next_document_number(session: AsyncSession, kind: str) -> int:
    """The next value of a per-kind counter, inside the caller's transaction (gap-free on commit)."""
    statement = (
        _insert_for(session)(document_counters)
        .values(kind=kind, last_value=1)
        .on_conflict_do_update(
            index_elements=["kind"], set_={"last_value": document_counters.c.last_value + 1}
        )
        .returning(document_counters.c.last_value)
    )
    return int((await session.execute(statement)).scalar_one())


def ticket_scope(grant: ScopeGrant) -> sa.ColumnElement[bool]:
    """The tickets `grant` reaches (see the module docstring)."""
    base = scope_predicate(grant, owner=tickets.c.requester, team=tickets.c.team)
    if grant.scope is Scope.TEAM:
        # An agent also works the tickets assigned to them in other teams (escalations, hand-overs).
        return sa.or_(base, tickets.c.assignee == grant.subject)
    return base


class TicketRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def next_number(self) -> str:
        """ "T-000042": unique and gap-free on commit."""
        return f"T-{await next_document_number(self.session, TICKET_NUMBER_KIND):06d}"

    async def get(self, ticket_id: str, grant: ScopeGrant | None = None, lock: bool = False) -> Ticket | None:
        """The ticket, if it exists and is within `grant` (None: no scope check)."""
        query = sa.select(tickets).where(tickets.c.id == ticket_id)
        if grant is not None:
            query = query.where(ticket_scope(grant))
        if lock and self.session.get_bind().dialect.name == "postgresql":
            # Serializes racing changes (a reply and a timer): the second waits, then sees the first.
            query = query.with_for_update()
        row = (await self.session.execute(query)).mappings().first()
        return None if row is None else ticket_from_row(row)

    async def get_many(self, ticket_ids: Sequence[str]) -> dict[str, Ticket]:
        if not ticket_ids:
            return {}
        query = sa.select(tickets).where(tickets.c.id.in_(list(ticket_ids)))
        return {row["id"]: ticket_from_row(row) for row in (await self.session.execute(query)).mappings()}

    async def list(
        self,
        grant: ScopeGrant,
        *,
        where: sa.ColumnElement[bool] | None,
        sort: Sequence[SortKey],
        after: Sequence[Any] | None,
        limit: int,
    ) -> list[Ticket]:
        query = sa.select(tickets).where(ticket_scope(grant))
        if where is not None:
            query = query.where(where)
        if after is not None:
            query = query.where(keyset_after(sort, after))
        query = query.order_by(*keyset_order(sort)).limit(limit)
        return [ticket_from_row(row) for row in (await self.session.execute(query)).mappings().all()]

    async def ids_of_customers(self, customers: Sequence[str]) -> list[str]:
        """Tickets of any of `customers` ("customers/{id}")."""
        if not customers:
            return []
        query = sa.select(tickets.c.id).where(tickets.c.customer.in_(list(customers))).order_by(tickets.c.id)
        return list((await self.session.execute(query)).scalars())

    async def resolved_before(self, moment: datetime, limit: int = 500) -> list[str]:
        query = (
            sa.select(tickets.c.id)
            .where(tickets.c.status == TicketStatus.RESOLVED.value, tickets.c.resolve_time <= moment)
            .order_by(tickets.c.resolve_time)
            .limit(limit)
        )
        return list((await self.session.execute(query)).scalars())

    async def open_counts(self, agents: Sequence[str]) -> dict[str, int]:
        """agent -> their open (NEW, OPEN, PENDING) tickets, in any team."""
        if not agents:
            return {}
        query = (
            sa.select(tickets.c.assignee, sa.func.count())
            .where(
                tickets.c.assignee.in_(list(agents)),
                tickets.c.status.in_([s.value for s in ACTIVE_STATUSES]),
            )
            .group_by(tickets.c.assignee)
        )
        return {agent: int(count) for agent, count in (await self.session.execute(query)).all()}

    async def count_open_in_team(self, team: str) -> int:
        query = sa.select(sa.func.count()).where(
            tickets.c.team == team, tickets.c.status.in_([s.value for s in ACTIVE_STATUSES])
        )
        return int((await self.session.execute(query)).scalar_one())

    async def add(self, ticket: Ticket) -> None:
        await self.session.execute(sa.insert(tickets).values(ticket_values(ticket)))

    async def save(self, ticket: Ticket, expected_row_version: int) -> None:
        """Writes the ticket; Aborted when someone else wrote it first."""
        values = ticket_values(ticket)
        for column in ("id", "number", "create_time", "requester"):
            del values[column]
        result = await self.session.execute(
            sa.update(tickets)
            .where(tickets.c.id == ticket.id, tickets.c.row_version == expected_row_version)
            .values(values)
        )
        if result.rowcount != 1:
            raise Aborted(
                f"{ticket.name} was changed concurrently; read it again and retry",
                reason="CONCURRENT_UPDATE",
                metadata={"resource": ticket.name},
            )

    # --- comments ---------------------------------------------------------------------------------

    async def add_comment(self, comment: TicketComment) -> None:
        await self.session.execute(
            sa.insert(ticket_comments).values(
                id=comment.id,
                ticket_id=comment.ticket_id,
                body=comment.body,
                internal=comment.internal,
                author=comment.author,
                from_customer=comment.from_customer,
                create_time=comment.create_time,
            )
        )

    async def list_comments(
        self, ticket_id: str, *, include_internal: bool, after: Sequence[Any] | None, limit: int
    ) -> list[TicketComment]:
        """Oldest first."""
        sort = [SortKey(ticket_comments.c.create_time, False), SortKey(ticket_comments.c.id, False)]
        query = sa.select(ticket_comments).where(ticket_comments.c.ticket_id == ticket_id)
        if not include_internal:
            query = query.where(ticket_comments.c.internal.is_(False))
        if after is not None:
            query = query.where(keyset_after(sort, after))
        query = query.order_by(*keyset_order(sort)).limit(limit)
        return [
            TicketComment(
                id=row["id"],
                ticket_id=row["ticket_id"],
                body=row["body"],
                internal=row["internal"],
                author=row["author"],
                from_customer=row["from_customer"],
                create_time=row["create_time"],
            )
            for row in (await self.session.execute(query)).mappings().all()
        ]
