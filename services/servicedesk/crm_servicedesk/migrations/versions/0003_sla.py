"""Business calendars, SLA policies, ticket SLA clocks and the escalation log.

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from crm_shared.db.types import UtcDateTime

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "business_calendars",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("display_name", sa.String(200), nullable=False, server_default=""),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("working_hours", sa.JSON, nullable=False),
        sa.Column("holidays", sa.JSON, nullable=False),
        sa.Column("create_time", UtcDateTime(), nullable=False),
        sa.Column("update_time", UtcDateTime(), nullable=False),
        sa.Column("row_version", sa.Integer, nullable=False),
    )
    op.create_table(
        "sla_policies",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("display_name", sa.String(200), nullable=False, server_default=""),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("condition", sa.JSON, nullable=False),
        sa.Column("calendar_id", sa.String(36), nullable=False),
        sa.Column("targets", sa.JSON, nullable=False),
        sa.Column("warning_percent", sa.Integer, nullable=False),
        sa.Column("escalations", sa.JSON, nullable=False),
        sa.Column("create_time", UtcDateTime(), nullable=False),
        sa.Column("update_time", UtcDateTime(), nullable=False),
        sa.Column("row_version", sa.Integer, nullable=False),
    )
    op.create_index("ix_sla_policies_order", "sla_policies", ["active", "priority", "create_time", "id"])
    op.create_index("ix_sla_policies_calendar", "sla_policies", ["calendar_id"])
    op.create_table(
        "ticket_sla_clocks",
        sa.Column("ticket_id", sa.String(36), primary_key=True),
        sa.Column("metric", sa.String(24), primary_key=True),
        sa.Column("cycle", sa.Integer, nullable=False),
        sa.Column("policy_id", sa.String(36), nullable=False),
        sa.Column("calendar_id", sa.String(36), nullable=False),
        sa.Column("target_us", sa.BigInteger, nullable=False),
        sa.Column("warning_percent", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("start_time", UtcDateTime(), nullable=False),
        sa.Column("accumulated_us", sa.BigInteger, nullable=False),
        sa.Column("running_since", UtcDateTime(), nullable=True),
        sa.Column("warned_time", UtcDateTime(), nullable=True),
        sa.Column("breached_time", UtcDateTime(), nullable=True),
        sa.Column("breach_due_time", UtcDateTime(), nullable=True),
        sa.Column("achieved_time", UtcDateTime(), nullable=True),
    )
    op.create_index("ix_ticket_sla_clocks_breached", "ticket_sla_clocks", ["breached_time"])
    op.create_table(
        "sla_escalations",
        sa.Column("ticket_id", sa.String(36), primary_key=True),
        sa.Column("metric", sa.String(24), primary_key=True),
        sa.Column("cycle", sa.Integer, primary_key=True),
        sa.Column("policy_id", sa.String(36), nullable=False),
        sa.Column("actions", sa.JSON, nullable=False),
        sa.Column("create_time", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sla_escalations")
    op.drop_table("ticket_sla_clocks")
    op.drop_index("ix_sla_policies_calendar", "sla_policies")
    op.drop_index("ix_sla_policies_order", "sla_policies")
    op.drop_table("sla_policies")
    op.drop_table("business_calendars")
