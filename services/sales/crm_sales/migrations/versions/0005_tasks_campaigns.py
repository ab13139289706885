"""Tasks; campaigns and campaign members.

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


def _times() -> list[sa.Column]:
    return [
        sa.Column("create_time", UtcDateTime(), nullable=False),
        sa.Column("update_time", UtcDateTime(), nullable=False),
        sa.Column("row_version", sa.Integer, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("due_time", UtcDateTime(), nullable=False),
        sa.Column("remind_before_seconds", sa.BigInteger, nullable=True),
        sa.Column("reminder_time", UtcDateTime(), nullable=True),
        sa.Column("assignee", sa.String(128), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("related", sa.String(128), nullable=False, server_default=""),
        sa.Column("done", sa.Boolean, nullable=False),
        sa.Column("done_time", UtcDateTime(), nullable=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("team", sa.String(128), nullable=False, server_default=""),
        *_times(),
    )
    op.create_index("ix_tasks_assignee_open_due", "tasks", ["assignee", "done", "due_time", "id"])
    op.create_index("ix_tasks_owner_due", "tasks", ["owner", "due_time", "id"])
    op.create_index("ix_tasks_team_due", "tasks", ["team", "due_time", "id"])
    op.create_index("ix_tasks_due", "tasks", ["due_time", "id"])
    op.create_index("ix_tasks_related", "tasks", ["related"])

    op.create_table(
        "campaigns",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("start_time", UtcDateTime(), nullable=True),
        sa.Column("end_time", UtcDateTime(), nullable=True),
        sa.Column("budget_currency", sa.String(3), nullable=False),
        sa.Column("budget_minor", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("owner", sa.String(128), nullable=False),
        *_times(),
    )
    op.create_index("ix_campaigns_create", "campaigns", ["create_time", "id"])
    op.create_index("ix_campaigns_start", "campaigns", ["start_time", "id"])

    op.create_table(
        "campaign_members",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "campaign_id",
            sa.String(36),
            sa.ForeignKey("campaigns.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("member", sa.String(200), nullable=False),
        sa.Column("response", sa.String(16), nullable=False),
        sa.Column("response_time", UtcDateTime(), nullable=True),
        sa.Column("notes", sa.Text, nullable=False, server_default=""),
        *_times(),
        sa.UniqueConstraint("campaign_id", "member", name="uq_campaign_members_member"),
    )
    op.create_index("ix_campaign_members_list", "campaign_members", ["campaign_id", "create_time", "id"])
    op.create_index("ix_campaign_members_response", "campaign_members", ["campaign_id", "response"])


def downgrade() -> None:
    op.drop_table("campaign_members")
    op.drop_table("campaigns")
    op.drop_table("tasks")
