"""CSAT surveys of tickets (placeholder until the CSAT area lands)."""

from __future__ import annotations


async def on_resolved(uow, ticket) -> None:
    """Open (or re-open) the ticket's survey."""


async def on_reopened(uow, ticket) -> None:
    """Close an unanswered survey until the next resolution."""
