"""CSAT surveys.

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


def upgrade() -> None:
    op.create_table(
        "csat_surveys",
        sa.Column("ticket_id", sa.String(36), primary_key=True),
        sa.Column("customer", sa.String(100), nullable=False, server_default=""),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("score", sa.Integer, nullable=False, server_default="0"),
        sa.Column("comment", sa.Text, nullable=False, server_default=""),
        sa.Column("first_contact_resolution", sa.Boolean, nullable=False),
        sa.Column("assignee", sa.String(128), nullable=False, server_default=""),
        sa.Column("team", sa.String(128), nullable=False, server_default=""),
        sa.Column("open_time", UtcDateTime(), nullable=True),
        sa.Column("answer_time", UtcDateTime(), nullable=True),
        sa.Column("answered_by", sa.String(128), nullable=False, server_default=""),
        sa.Column("update_time", UtcDateTime(), nullable=False),
        sa.Column("row_version", sa.Integer, nullable=False),
    )
    op.create_index("ix_csat_surveys_state_answer", "csat_surveys", ["state", "answer_time", "ticket_id"])
    op.create_index("ix_csat_surveys_team_answer", "csat_surveys", ["team", "answer_time", "ticket_id"])
    op.create_index(
        "ix_csat_surveys_assignee_answer", "csat_surveys", ["assignee", "answer_time", "ticket_id"]
    )
    op.create_index("ix_csat_surveys_customer", "csat_surveys", ["customer"])


def downgrade() -> None:
    op.drop_table("csat_surveys")
