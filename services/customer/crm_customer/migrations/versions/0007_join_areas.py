"""Join the area branches (pools/follow-ups, behaviour, data quality, custom fields/privacy)
into one head, so `alembic upgrade head` works as well as `heads`.

Revision ID: 0007
Revises: 0003, 0004, 0005, 0006
Create Date: 2026-11-22
"""

revision = "0007"
down_revision = ("0003", "0004", "0005", "0006")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
