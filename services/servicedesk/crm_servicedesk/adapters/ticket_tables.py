"""Tickets, their comments, support teams with their members, and document numbers.

Tags are JSON on the ticket row (a value object always read and written with the ticket); the
`tags` filter matches them with a LIKE on the JSON text, which is enough for a queue filter.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_servicedesk.adapters.tables import metadata
from crm_shared.db.types import UtcDateTime

tickets = sa.Table(
    "tickets",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("number", sa.String(32), nullable=False, unique=True),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("subject", sa.String(300), nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("priority", sa.String(16), nullable=False),
    # Ordered priority (1 low .. 4 urgent) so ORDER BY priority means urgency, not the alphabet.
    sa.Column("priority_rank", sa.SmallInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("customer", sa.String(100), nullable=False, server_default=""),
    sa.Column("contact", sa.String(160), nullable=False, server_default=""),
    sa.Column("assignee", sa.String(128), nullable=False, server_default=""),
    sa.Column("team", sa.String(64), nullable=False, server_default=""),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("requester", sa.String(128), nullable=False),
    sa.Column("snapshot_state", sa.String(16), nullable=False),
    sa.Column("customer_name", sa.String(300), nullable=False, server_default=""),
    sa.Column("customer_tier", sa.String(64), nullable=False, server_default=""),
    sa.Column("customer_lifecycle", sa.String(64), nullable=False, server_default=""),
    sa.Column("customer_owner", sa.String(128), nullable=False, server_default=""),
    sa.Column("customer_team", sa.String(128), nullable=False, server_default=""),
    sa.Column("snapshot_time", UtcDateTime(), nullable=True),
    sa.Column("first_response_time", UtcDateTime(), nullable=True),
    sa.Column("resolve_time", UtcDateTime(), nullable=True),
    sa.Column("close_time", UtcDateTime(), nullable=True),
    sa.Column("reopen_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("public_agent_replies", sa.Integer, nullable=False, server_default="0"),
    sa.Column("pending_reason", sa.Text, nullable=False, server_default=""),
    sa.Column("resolution", sa.Text, nullable=False, server_default=""),
    sa.Column("create_time", UtcDateTime(), nullable=False),
    sa.Column("update_time", UtcDateTime(), nullable=False),
    sa.Column("row_version", sa.Integer, nullable=False),  # etag / optimistic concurrency
    sa.Index("ix_tickets_create", "create_time", "id"),
    sa.Index("ix_tickets_update", "update_time", "id"),
    sa.Index("ix_tickets_team_create", "team", "create_time", "id"),
    sa.Index("ix_tickets_assignee_status", "assignee", "status"),
    sa.Index("ix_tickets_requester_create", "requester", "create_time", "id"),
    sa.Index("ix_tickets_customer", "customer"),
    sa.Index("ix_tickets_status_resolve", "status", "resolve_time"),
)

ticket_comments = sa.Table(
    "ticket_comments",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("ticket_id", sa.String(36), sa.ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("internal", sa.Boolean, nullable=False),
    sa.Column("author", sa.String(128), nullable=False),
    sa.Column("from_customer", sa.Boolean, nullable=False),
    sa.Column("create_time", UtcDateTime(), nullable=False),
    sa.Index("ix_ticket_comments_ticket_create", "ticket_id", "create_time", "id"),
)

support_teams = sa.Table(
    "support_teams",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # the agents' `team` claim
    sa.Column("display_name", sa.String(200), nullable=False, server_default=""),
    sa.Column("strategy", sa.String(16), nullable=False),
    # The member who got the latest automatic assignment: the next turn starts after them, and
    # it survives restarts (round-robin is fair across processes and deploys).
    sa.Column("last_assignee", sa.String(128), nullable=False, server_default=""),
    sa.Column("create_time", UtcDateTime(), nullable=False),
    sa.Column("update_time", UtcDateTime(), nullable=False),
    sa.Column("row_version", sa.Integer, nullable=False),
)

team_members = sa.Table(
    "team_members",
    metadata,
    sa.Column(
        "team_id", sa.String(64), sa.ForeignKey("support_teams.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("agent", sa.String(128), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),  # the turn order
    sa.Column("available", sa.Boolean, nullable=False),
)

# Human-readable numbers ("T-000042"): one counter row per kind, incremented inside the creating
# transaction (row lock on PostgreSQL, the writer lock on SQLite): unique and gap-free on commit.
document_counters = sa.Table(
    "servicedesk_document_counters",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("last_value", sa.BigInteger, nullable=False),
)
