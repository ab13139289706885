"""SLA clocks of tickets (placeholder until the SLA area lands: no policy ever matches)."""

from __future__ import annotations


async def recompute(uow, ticket, *, event: str, actor: str = ""):
    """Re-evaluate the ticket's SLA after `event`; returns what changed (None: nothing)."""
    return None


async def sla_views(session, ticket_ids) -> dict:
    """ticket id -> the SLA view GetTicket shows (empty: no SLA)."""
    return {}
