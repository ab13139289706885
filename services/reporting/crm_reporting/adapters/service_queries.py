"""Reads of the servicedesk read models for the service report, inside the caller's scope."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from crm_reporting.adapters.service_tables import service_csat, service_sla_breaches, service_tickets
from crm_reporting.domain import service_metrics as rules


def _between(column, start: datetime | None, end: datetime | None) -> sa.ColumnElement[bool]:
    clauses = [column.is_not(None)]
    if start is not None:
        clauses.append(column >= start)
    if end is not None:
        clauses.append(column < end)
    return sa.and_(*clauses)


async def ticket_facts(session, scope) -> list[rules.TicketFact]:
    """Tickets in scope that count for the period: created or resolved in it, or open now."""
    t = service_tickets.c
    rows = await session.execute(
        sa.select(service_tickets).where(
            scope.predicate(t.assignee, t.team),
            sa.or_(
                _between(t.create_time, scope.start, scope.end),
                _between(t.resolve_time, scope.start, scope.end),
                t.status.in_(sorted(rules.OPEN_STATUSES)),
            ),
        )
    )
    return [
        rules.TicketFact(
            ticket=r.ticket,
            assignee=r.assignee,
            team=r.team,
            status=r.status,
            sla_policy=r.sla_policy,
            create_time=r.create_time,
            first_response_time=r.first_response_time,
            resolve_time=r.resolve_time,
            first_response_business_seconds=r.first_response_business_seconds,
            first_response_breached=bool(r.first_response_breached),
            resolution_breached=bool(r.resolution_breached),
        )
        for r in rows
    ]


async def breach_facts(session, scope) -> list[rules.BreachFact]:
    b = service_sla_breaches.c
    rows = await session.execute(
        sa.select(b.assignee, b.team, b.breach_time).where(
            scope.predicate(b.assignee, b.team), _between(b.breach_time, scope.start, scope.end)
        )
    )
    return [rules.BreachFact(assignee=r.assignee, team=r.team, breach_time=r.breach_time) for r in rows]


async def csat_facts(session, scope) -> list[rules.CsatFact]:
    c = service_csat.c
    rows = await session.execute(
        sa.select(c.assignee, c.team, c.score, c.first_contact_resolution, c.answer_time).where(
            scope.predicate(c.assignee, c.team), _between(c.answer_time, scope.start, scope.end)
        )
    )
    return [
        rules.CsatFact(
            assignee=r.assignee,
            team=r.team,
            score=r.score,
            first_contact_resolution=bool(r.first_contact_resolution),
            answer_time=r.answer_time,
        )
        for r in rows
    ]
