"""Approval workflows, approvals and their decision history.

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


def _times() -> list[sa.Column]:
    return [
        sa.Column("create_time", UtcDateTime(), nullable=False),
        sa.Column("update_time", UtcDateTime(), nullable=False),
        sa.Column("row_version", sa.Integer, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "approval_workflows",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("display_name", sa.String(200), nullable=False, server_default=""),
        sa.Column("target", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False, server_default=""),
        sa.Column("min_amount", sa.BigInteger, nullable=True),
        sa.Column("max_amount", sa.BigInteger, nullable=True),
        sa.Column("contract_types", sa.JSON, nullable=False),
        sa.Column("steps", sa.JSON, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        *_times(),
    )
    op.create_index(
        "ix_approval_workflows_routing",
        "approval_workflows",
        ["target", "active", "priority", "create_time", "id"],
    )

    op.create_table(
        "approvals",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("target_type", sa.String(16), nullable=False),
        sa.Column("workflow_id", sa.String(36), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("steps", sa.JSON, nullable=False),
        sa.Column("current_step", sa.Integer, nullable=False),
        sa.Column("step_kind", sa.String(16), nullable=False, server_default=""),
        sa.Column("step_role", sa.String(64), nullable=False, server_default=""),
        sa.Column("step_user", sa.String(128), nullable=False, server_default=""),
        sa.Column("submitter", sa.String(128), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("team", sa.String(128), nullable=False, server_default=""),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        *_times(),
    )
    op.create_index("ix_approvals_target_create", "approvals", ["target", "create_time", "id"])
    op.create_index("ix_approvals_state_kind", "approvals", ["state", "step_kind", "create_time", "id"])
    op.create_index("ix_approvals_owner_create", "approvals", ["owner", "create_time", "id"])
    op.create_index("ix_approvals_team_create", "approvals", ["team", "create_time", "id"])
    op.create_index("ix_approvals_create", "approvals", ["create_time", "id"])

    op.create_table(
        "approval_decisions",
        sa.Column(
            "approval_id",
            sa.String(36),
            sa.ForeignKey("approvals.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("comment", sa.Text, nullable=False, server_default=""),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_approval_decisions_actor", "approval_decisions", ["actor", "action", "approval_id"])


def downgrade() -> None:
    op.drop_table("approval_decisions")
    op.drop_table("approvals")
    op.drop_table("approval_workflows")
