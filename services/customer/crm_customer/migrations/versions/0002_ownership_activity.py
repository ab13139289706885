"""Ownership, public pool and activity columns; collaborators; per-customer data keys; timers.

Personal fields are sealed with a per-customer data key from here on (crm_shared.pii.codec).
Rows written by 0001's direct key-ring encryption are not converted: 0001 was never released.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from crm_shared.db.tables import create_platform_table

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _columns() -> list[sa.Column]:
    return [
        sa.Column("status", sa.String(16), nullable=False, server_default="owned"),
        sa.Column("locked", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("pool_id", sa.String(36), nullable=False, server_default=""),
        sa.Column("former_owner", sa.String(128), nullable=False, server_default=""),
        sa.Column("assign_time", TS, nullable=True),
        sa.Column("reclaim_time", TS, nullable=True),
        sa.Column("last_follow_up_time", TS, nullable=True),
        sa.Column("next_follow_up_time", TS, nullable=True),
        sa.Column("last_deal_time", TS, nullable=True),
        sa.Column("health_score", sa.Integer, nullable=False, server_default="0"),
        sa.Column("collaborators", sa.JSON, nullable=False, server_default="[]"),
        sa.Column("merged_into", sa.String(36), nullable=False, server_default=""),
    ]


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        for column in _columns():
            batch.add_column(column)
    op.create_index("ix_customers_status_pool", "customers", ["status", "pool_id", "create_time", "id"])
    op.create_table(
        "customer_collaborators",
        sa.Column(
            "customer_id", sa.String(36), sa.ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("user_id", sa.String(128), primary_key=True),
    )
    op.create_index("ix_customer_collaborators_user", "customer_collaborators", ["user_id", "customer_id"])
    op.create_table(
        "customer_keys",
        sa.Column("customer_id", sa.String(36), primary_key=True),
        sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
        sa.Column("create_time", TS, nullable=False),
    )
    create_platform_table(op, "timers")


def downgrade() -> None:
    op.drop_table("timers")
    op.drop_table("customer_keys")
    op.drop_table("customer_collaborators")
    op.drop_index("ix_customers_status_pool", "customers")
    with op.batch_alter_table("customers") as batch:
        for column in reversed(_columns()):
            batch.drop_column(column.name)
