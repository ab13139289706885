"""initial: platform tables and one domain table

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from crm_shared.db.tables import create_platform_tables, drop_platform_tables
from crm_shared.db.types import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_platform_tables(op, include_later=True)
    op.create_table(
        "widgets",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("widgets")
    drop_platform_tables(op, include_later=True)
