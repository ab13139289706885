"""Framework read-model tables (on the reporting `metadata`): projection status and the customer timeline."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from crm_reporting.adapters.tables import metadata
from crm_shared.db.types import UtcDateTime

# One row per durable consumer (reporting-<source>): what it applied and how far behind it is.
projection_status = sa.Table(
    "projection_status",
    metadata,
    sa.Column("consumer", sa.String(100), primary_key=True),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("applied_events", sa.BigInteger, nullable=False, server_default="0"),
    # occurred_at of the last applied event and when it was applied (lag = the difference).
    sa.Column("last_event_time", UtcDateTime(), nullable=True),
    sa.Column("last_applied_time", UtcDateTime(), nullable=True),
)

# Customer 360 timeline: one entry per fact (follow-up, purchase, opportunity, quote, contract,
# payment, ticket …), written by every area through crm_reporting.service.timeline.record.
# `key` makes an entry idempotent (f"{envelope.id}:{kind}"). Summaries carry no free text typed
# by a person (no notes, no names): kinds, numbers, states and resource names only.
timeline = sa.Table(
    "timeline",
    metadata,
    sa.Column("key", sa.String(120), primary_key=True),
    sa.Column("customer", sa.String(100), nullable=False),
    sa.Column("time", UtcDateTime(), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("resource", sa.String(200), nullable=False, server_default=""),
    sa.Column("summary", sa.String(500), nullable=False, server_default=""),
    sa.Column("currency", sa.String(3), nullable=False, server_default=""),
    sa.Column("amount_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("actor", sa.String(128), nullable=False, server_default=""),
    sa.Index("ix_timeline_customer_time", "customer", "time", "key"),
)


def dialect_insert(session, table: sa.Table):
    """INSERT with on_conflict_do_nothing/do_update for the session's dialect (PostgreSQL or SQLite)."""
    if session.bind.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
