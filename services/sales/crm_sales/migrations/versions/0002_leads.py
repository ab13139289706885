"""Leads: leads, their data keys and blind indexes, round-robin assignment rules.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "leads",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("company", sa.String(200), nullable=False, server_default=""),
        sa.Column("title", sa.String(100), nullable=False, server_default=""),
        sa.Column("phones_enc", sa.LargeBinary, nullable=True),
        sa.Column("emails_enc", sa.LargeBinary, nullable=True),
        sa.Column("source_channel", sa.String(16), nullable=False, server_default=""),
        sa.Column("source_platform", sa.String(100), nullable=False, server_default=""),
        sa.Column("external_account_id", sa.String(200), nullable=False, server_default=""),
        sa.Column("campaign_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("disqualify_reason", sa.String(500), nullable=False, server_default=""),
        sa.Column("owner", sa.String(128), nullable=False, server_default=""),
        sa.Column("team", sa.String(128), nullable=False, server_default=""),
        sa.Column("score", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_follow_up_time", TS, nullable=True),
        sa.Column("converted_customer", sa.String(128), nullable=False, server_default=""),
        sa.Column("converted_contact", sa.String(200), nullable=False, server_default=""),
        sa.Column("converted_opportunity", sa.String(128), nullable=False, server_default=""),
        sa.Column("convert_time", TS, nullable=True),
        sa.Column("create_time", TS, nullable=False),
        sa.Column("update_time", TS, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_leads_create", "leads", ["create_time", "id"])
    op.create_index("ix_leads_owner_create", "leads", ["owner", "create_time", "id"])
    op.create_index("ix_leads_team_create", "leads", ["team", "create_time", "id"])
    op.create_index("ix_leads_status_create", "leads", ["status", "create_time", "id"])
    op.create_table(
        "lead_keys",
        sa.Column("lead_id", sa.String(36), primary_key=True),
        sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
        sa.Column("create_time", TS, nullable=False),
    )
    op.create_table(
        "lead_identifiers",
        sa.Column("lead_id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("digest", sa.String(64), primary_key=True),
    )
    op.create_index("ix_lead_identifiers_digest", "lead_identifiers", ["kind", "digest"])
    op.create_table(
        "lead_assignment_rules",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("team", sa.String(128), nullable=False),
        sa.Column("members", sa.JSON, nullable=False),
        sa.Column("source_channels", sa.JSON, nullable=False),
        sa.Column("next_index", sa.Integer, nullable=False),
        sa.Column("create_time", TS, nullable=False),
        sa.Column("update_time", TS, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_lead_assignment_rules_team", "lead_assignment_rules", ["team", "create_time", "id"])


def downgrade() -> None:
    op.drop_table("lead_assignment_rules")
    op.drop_table("lead_identifiers")
    op.drop_table("lead_keys")
    op.drop_table("leads")
