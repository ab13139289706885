"""Tickets, ticket comments, support teams with their members, and document number counters.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from crm_shared.db.types import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("number", sa.String(32), nullable=False, unique=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("priority", sa.String(16), nullable=False),
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
        sa.Column("row_version", sa.Integer, nullable=False),
    )
    op.create_index("ix_tickets_assignee_status", "tickets", ["assignee", "status"])
    op.create_index("ix_tickets_create", "tickets", ["create_time", "id"])
    op.create_index("ix_tickets_customer", "tickets", ["customer"])
    op.create_index("ix_tickets_requester_create", "tickets", ["requester", "create_time", "id"])
    op.create_index("ix_tickets_status_resolve", "tickets", ["status", "resolve_time"])
    op.create_index("ix_tickets_team_create", "tickets", ["team", "create_time", "id"])
    op.create_index("ix_tickets_update", "tickets", ["update_time", "id"])
    op.create_table(
        "ticket_comments",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "ticket_id", sa.String(36), sa.ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("internal", sa.Boolean, nullable=False),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("from_customer", sa.Boolean, nullable=False),
        sa.Column("create_time", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_ticket_comments_ticket_create", "ticket_comments", ["ticket_id", "create_time", "id"])
    op.create_table(
        "support_teams",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("display_name", sa.String(200), nullable=False, server_default=""),
        sa.Column("strategy", sa.String(16), nullable=False),
        sa.Column("last_assignee", sa.String(128), nullable=False, server_default=""),
        sa.Column("create_time", UtcDateTime(), nullable=False),
        sa.Column("update_time", UtcDateTime(), nullable=False),
        sa.Column("row_version", sa.Integer, nullable=False),
    )
    op.create_table(
        "team_members",
        sa.Column(
            "team_id",
            sa.String(64),
            sa.ForeignKey("support_teams.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("agent", sa.String(128), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("available", sa.Boolean, nullable=False),
    )
    op.create_table(
        "servicedesk_document_counters",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("last_value", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("servicedesk_document_counters")
    op.drop_table("team_members")
    op.drop_table("support_teams")
    op.drop_table("ticket_comments")
    op.drop_table("tickets")
