"""Customer analytics: customer_scores, analytics_activity, analytics_lifecycle.

Revision ID: 0006
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from crm_shared.db.types import UtcDateTime

revision = "0006"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customer_scores",
        sa.Column("customer", sa.String(100), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False, server_default=""),
        sa.Column("team", sa.String(128), nullable=False, server_default=""),
        sa.Column("abc_class", sa.Integer, nullable=False),
        sa.Column("rfm_segment", sa.String(32), nullable=False),
        sa.Column("recency_score", sa.Integer, nullable=False),
        sa.Column("frequency_score", sa.Integer, nullable=False),
        sa.Column("monetary_score", sa.Integer, nullable=False),
        sa.Column("health_score", sa.Integer, nullable=False),
        sa.Column("churn_risk", sa.Integer, nullable=False),
        sa.Column("factors", sa.JSON, nullable=False),
        sa.Column("compute_time", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_customer_scores_health", "customer_scores", ["health_score", "customer"])
    op.create_index("ix_customer_scores_owner", "customer_scores", ["owner"])
    op.create_index("ix_customer_scores_team", "customer_scores", ["team"])
    op.create_table(
        "analytics_activity",
        sa.Column("key", sa.String(120), primary_key=True),
        sa.Column("customer", sa.String(100), nullable=False),
        sa.Column("time", UtcDateTime(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False, server_default=""),
    )
    op.create_index("ix_analytics_activity_customer_time", "analytics_activity", ["customer", "time"])
    op.create_table(
        "analytics_lifecycle",
        sa.Column("customer", sa.String(100), primary_key=True),
        sa.Column("time", UtcDateTime(), primary_key=True),
        sa.Column("stage", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("analytics_lifecycle")
    op.drop_index("ix_analytics_activity_customer_time", table_name="analytics_activity")
    op.drop_table("analytics_activity")
    for name in ("ix_customer_scores_team", "ix_customer_scores_owner", "ix_customer_scores_health"):
        op.drop_index(name, table_name="customer_scores")
    op.drop_table("customer_scores")
