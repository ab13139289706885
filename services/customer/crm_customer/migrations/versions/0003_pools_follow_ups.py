"""Public pools, pool members, ownership history, follow-ups.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "pools",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("team", sa.String(128), nullable=False, server_default=""),
        sa.Column("rules", sa.JSON, nullable=False),
        sa.Column("create_time", TS, nullable=False),
        sa.Column("update_time", TS, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_pools_create", "pools", ["create_time", "id"])
    op.create_index("ix_pools_team", "pools", ["team", "create_time", "id"])
    op.create_table(
        "pool_members",
        sa.Column("pool_id", sa.String(36), sa.ForeignKey("pools.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("member_kind", sa.String(8), primary_key=True),
        sa.Column("member", sa.String(128), primary_key=True),
    )
    op.create_index("ix_pool_members_member", "pool_members", ["member_kind", "member", "pool_id"])
    op.create_table(
        "ownership_changes",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("customer_id", sa.String(36), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("detail_code", sa.String(64), nullable=False, server_default=""),
        sa.Column("from_owner", sa.String(128), nullable=False, server_default=""),
        sa.Column("to_owner", sa.String(128), nullable=False, server_default=""),
        sa.Column("from_team", sa.String(128), nullable=False, server_default=""),
        sa.Column("to_team", sa.String(128), nullable=False, server_default=""),
        sa.Column("pool_id", sa.String(36), nullable=False, server_default=""),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("change_time", TS, nullable=False),
    )
    op.create_index(
        "ix_ownership_changes_customer", "ownership_changes", ["customer_id", "change_time", "id"]
    )
    op.create_index("ix_ownership_changes_to", "ownership_changes", ["to_owner", "reason", "change_time"])
    op.create_index(
        "ix_ownership_changes_from", "ownership_changes", ["from_owner", "customer_id", "change_time"]
    )
    op.create_table(
        "follow_ups",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "customer_id", sa.String(36), sa.ForeignKey("customers.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("follow_up_time", TS, nullable=False),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("next_follow_up_time", TS, nullable=True),
        sa.Column("related_opportunity", sa.String(200), nullable=False, server_default=""),
        sa.Column("related_ticket", sa.String(200), nullable=False, server_default=""),
        sa.Column("create_time", TS, nullable=False),
    )
    op.create_index("ix_follow_ups_customer_time", "follow_ups", ["customer_id", "follow_up_time", "id"])


def downgrade() -> None:
    op.drop_table("follow_ups")
    op.drop_table("ownership_changes")
    op.drop_table("pool_members")
    op.drop_table("pools")
