"""Custom field definitions and the uniqueness side table of custom field values.

Revision ID: 0006
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "custom_field_definitions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("resource_type", sa.String(16), nullable=False),
        sa.Column("key", sa.String(63), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False, server_default=""),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("allowed_values", sa.JSON, nullable=False),
        sa.Column("required", sa.Boolean, nullable=False),
        sa.Column("unique", sa.Boolean, nullable=False),
        sa.Column("filterable", sa.Boolean, nullable=False),
        sa.Column("create_time", TS, nullable=False),
        sa.Column("update_time", TS, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.UniqueConstraint("resource_type", "key", name="uq_custom_field_definitions_key"),
    )
    op.create_table(
        "custom_field_values_unique",
        sa.Column("definition_id", sa.String(36), primary_key=True),
        sa.Column("value_digest", sa.String(64), primary_key=True),
        sa.Column(
            "customer_id", sa.String(36), sa.ForeignKey("customers.id", ondelete="CASCADE"), nullable=False
        ),
    )
    op.create_index("ix_custom_field_values_unique_customer", "custom_field_values_unique", ["customer_id"])


def downgrade() -> None:
    op.drop_table("custom_field_values_unique")
    op.drop_table("custom_field_definitions")
