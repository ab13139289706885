"""The platform tables (outbox, inbox, dead letters, idempotency keys, audit log, timers).

Each area of the reporting service adds its tables in its own revision branching from here.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from alembic import op

from crm_shared.db.tables import create_platform_tables, drop_platform_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_platform_tables(op, include_later=True)


def downgrade() -> None:
    drop_platform_tables(op, include_later=True)
