"""Projection status, the customer timeline, and the customer read model (profile, contacts, follow-ups).

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
        "projection_status",
        sa.Column("consumer", sa.String(100), primary_key=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("applied_events", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_event_time", UtcDateTime(), nullable=True),
        sa.Column("last_applied_time", UtcDateTime(), nullable=True),
    )
    op.create_table(
        "timeline",
        sa.Column("key", sa.String(120), primary_key=True),
        sa.Column("customer", sa.String(100), nullable=False),
        sa.Column("time", UtcDateTime(), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("resource", sa.String(200), nullable=False, server_default=""),
        sa.Column("summary", sa.String(500), nullable=False, server_default=""),
        sa.Column("currency", sa.String(3), nullable=False, server_default=""),
        sa.Column("amount_minor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("actor", sa.String(128), nullable=False, server_default=""),
    )
    op.create_index("ix_timeline_customer_time", "timeline", ["customer", "time", "key"])
    op.create_table(
        "report_customers",
        sa.Column("customer", sa.String(100), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False, server_default=""),
        sa.Column("display_name", sa.String(300), nullable=False, server_default=""),
        sa.Column("industry", sa.String(100), nullable=False, server_default=""),
        sa.Column("source", sa.String(100), nullable=False, server_default=""),
        sa.Column("tier", sa.String(4), nullable=False, server_default=""),
        sa.Column("lifecycle_stage", sa.String(32), nullable=False, server_default=""),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("owner", sa.String(128), nullable=False, server_default=""),
        sa.Column("team", sa.String(128), nullable=False, server_default=""),
        sa.Column("create_time", UtcDateTime(), nullable=True),
        sa.Column("update_time", UtcDateTime(), nullable=True),
        sa.Column("owner_time", UtcDateTime(), nullable=True),
        sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("merged_into", sa.String(100), nullable=False, server_default=""),
        sa.Column("last_follow_up_time", UtcDateTime(), nullable=True),
        sa.Column("next_follow_up_time", UtcDateTime(), nullable=True),
        sa.Column("purchases", sa.Integer, nullable=False, server_default="0"),
        sa.Column("abandoned_carts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_purchase_time", UtcDateTime(), nullable=True),
        sa.Column("last_activity_time", UtcDateTime(), nullable=True),
        sa.Column("event_time", UtcDateTime(), nullable=True),
    )
    op.create_index("ix_report_customers_owner", "report_customers", ["owner"])
    op.create_index("ix_report_customers_team", "report_customers", ["team"])
    op.create_index("ix_report_customers_next_follow_up", "report_customers", ["next_follow_up_time"])
    op.create_table(
        "report_contacts",
        sa.Column("contact", sa.String(160), primary_key=True),
        sa.Column("customer", sa.String(100), nullable=False),
        sa.Column("is_primary", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_report_contacts_customer", "report_contacts", ["customer"])
    op.create_table(
        "report_follow_ups",
        sa.Column("follow_up", sa.String(200), primary_key=True),
        sa.Column("customer", sa.String(100), nullable=False),
        sa.Column("type", sa.String(32), nullable=False, server_default=""),
        sa.Column("author", sa.String(128), nullable=False, server_default=""),
        sa.Column("follow_up_time", UtcDateTime(), nullable=True),
        sa.Column("next_follow_up_time", UtcDateTime(), nullable=True),
    )
    op.create_index("ix_report_follow_ups_customer", "report_follow_ups", ["customer", "follow_up_time"])
    op.create_index("ix_report_follow_ups_next", "report_follow_ups", ["next_follow_up_time"])


def downgrade() -> None:
    for table in (
        "report_follow_ups",
        "report_contacts",
        "report_customers",
        "timeline",
        "projection_status",
    ):
        op.drop_table(table)
