"""Servicedesk read models (tickets, SLA breaches, CSAT answers) and the agenda reminders.

Revision ID: 0005
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from crm_shared.db.types import UtcDateTime

revision = "0005"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_tickets",
        sa.Column("ticket", sa.String(100), primary_key=True),
        sa.Column("customer", sa.String(100), nullable=False, server_default=""),
        sa.Column("assignee", sa.String(128), nullable=False, server_default=""),
        sa.Column("team", sa.String(128), nullable=False, server_default=""),
        sa.Column("status", sa.Integer, nullable=False, server_default="0"),
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        sa.Column("sla_policy", sa.String(100), nullable=False, server_default=""),
        sa.Column("create_time", UtcDateTime(), nullable=True),
        sa.Column("first_response_time", UtcDateTime(), nullable=True),
        sa.Column("resolve_time", UtcDateTime(), nullable=True),
        sa.Column("first_response_business_seconds", sa.Float, nullable=True),
        sa.Column("first_response_breached", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("resolution_breached", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("reopen_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("event_time", UtcDateTime(), nullable=True),
    )
    op.create_index("ix_service_tickets_customer", "service_tickets", ["customer"])
    op.create_index("ix_service_tickets_assignee", "service_tickets", ["assignee"])
    op.create_index("ix_service_tickets_team", "service_tickets", ["team"])
    op.create_table(
        "service_sla_breaches",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("ticket", sa.String(100), nullable=False),
        sa.Column("customer", sa.String(100), nullable=False, server_default=""),
        sa.Column("metric", sa.Integer, nullable=False),
        sa.Column("assignee", sa.String(128), nullable=False, server_default=""),
        sa.Column("team", sa.String(128), nullable=False, server_default=""),
        sa.Column("due_time", UtcDateTime(), nullable=True),
        sa.Column("breach_time", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_service_sla_breaches_customer", "service_sla_breaches", ["customer", "breach_time"])
    op.create_index("ix_service_sla_breaches_time", "service_sla_breaches", ["breach_time"])
    op.create_table(
        "service_csat",
        sa.Column("ticket", sa.String(100), primary_key=True),
        sa.Column("customer", sa.String(100), nullable=False, server_default=""),
        sa.Column("assignee", sa.String(128), nullable=False, server_default=""),
        sa.Column("team", sa.String(128), nullable=False, server_default=""),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("first_contact_resolution", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("answer_time", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_service_csat_customer", "service_csat", ["customer"])
    op.create_table(
        "agenda_items",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("kind", sa.Integer, nullable=False),
        sa.Column("user", sa.String(128), nullable=False, server_default=""),
        sa.Column("approver_role", sa.String(64), nullable=False, server_default=""),
        sa.Column("approver_team", sa.String(128), nullable=False, server_default=""),
        sa.Column("owner", sa.String(128), nullable=False, server_default=""),
        sa.Column("team", sa.String(128), nullable=False, server_default=""),
        sa.Column("resource", sa.String(200), nullable=False, server_default=""),
        sa.Column("title", sa.String(200), nullable=False, server_default=""),
        sa.Column("customer", sa.String(100), nullable=False, server_default=""),
        sa.Column("due_time", UtcDateTime(), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False, server_default=""),
        sa.Column("amount_minor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("step", sa.Integer, nullable=False, server_default="0"),
        sa.Column("create_time", UtcDateTime(), nullable=False),
        sa.Column("event_time", UtcDateTime(), nullable=False),
        sa.Column("done", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_agenda_items_user", "agenda_items", ["user", "done", "due_time"])
    op.create_index("ix_agenda_items_role", "agenda_items", ["approver_role", "done"])
    op.create_index("ix_agenda_items_resource", "agenda_items", ["resource"])


def downgrade() -> None:
    for table in ("agenda_items", "service_csat", "service_sla_breaches", "service_tickets"):
        op.drop_table(table)
