"""Pipelines and stages (with the seeded default pipeline), opportunities, product lines, stage history.

The default pipeline "pipelines/default" is inserted here, not on first use, so
every database has it from the start and concurrent first requests cannot race.

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-22
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)

# Frozen copy of the seed (a migration must not change when domain code does).
DEFAULT_STAGES = (
    ("qualification", "Qualification", 10, "pipeline", False, False),
    ("needs-analysis", "Needs analysis", 25, "pipeline", False, False),
    ("proposal", "Proposal", 50, "best_case", False, False),
    ("negotiation", "Negotiation", 75, "commit", False, False),
    ("closed-won", "Closed won", 100, "closed", True, False),
    ("closed-lost", "Closed lost", 0, "omitted", False, True),
)


def upgrade() -> None:
    pipelines = op.create_table(
        "pipelines",
        sa.Column("id", sa.String(63), primary_key=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("currency_code", sa.String(3), nullable=False, server_default=""),
        sa.Column("is_default", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("create_time", TS, nullable=False),
        sa.Column("update_time", TS, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    stages = op.create_table(
        "pipeline_stages",
        sa.Column(
            "pipeline_id", sa.String(63), sa.ForeignKey("pipelines.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("id", sa.String(63), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("default_probability", sa.Integer, nullable=False),
        sa.Column("forecast_category", sa.String(16), nullable=False),
        sa.Column("is_won", sa.Boolean, nullable=False),
        sa.Column("is_lost", sa.Boolean, nullable=False),
    )
    op.create_table(
        "opportunities",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("customer_id", sa.String(36), nullable=False),
        sa.Column("contact", sa.String(120), nullable=False, server_default=""),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency_code", sa.String(3), nullable=False),
        sa.Column("weighted_amount_minor", sa.BigInteger, nullable=False),
        sa.Column("expected_close_time", TS, nullable=False),
        sa.Column("pipeline_id", sa.String(63), nullable=False),
        sa.Column("stage_id", sa.String(63), nullable=False),
        sa.Column("probability", sa.Integer, nullable=False),
        sa.Column("probability_overridden", sa.Boolean, nullable=False),
        sa.Column("forecast_category", sa.String(16), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("team", sa.String(128), nullable=False, server_default=""),
        sa.Column("competitor", sa.String(200), nullable=False, server_default=""),
        sa.Column("lost_reason", sa.String(500), nullable=False, server_default=""),
        sa.Column("source_lead", sa.String(64), nullable=False, server_default=""),
        sa.Column("campaign", sa.String(64), nullable=False, server_default=""),
        sa.Column("create_time", TS, nullable=False),
        sa.Column("update_time", TS, nullable=False),
        sa.Column("close_time", TS, nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    for name, columns in (
        ("ix_opportunities_create", ["create_time", "id"]),
        ("ix_opportunities_owner_create", ["owner", "create_time", "id"]),
        ("ix_opportunities_team_create", ["team", "create_time", "id"]),
        ("ix_opportunities_customer", ["customer_id", "create_time"]),
        ("ix_opportunities_owner_expected", ["owner", "state", "expected_close_time"]),
        ("ix_opportunities_team_expected", ["team", "state", "expected_close_time"]),
        ("ix_opportunities_state_expected", ["state", "expected_close_time"]),
        ("ix_opportunities_owner_closed", ["owner", "close_time"]),
        ("ix_opportunities_team_closed", ["team", "close_time"]),
        ("ix_opportunities_closed", ["close_time"]),
        ("ix_opportunities_stage", ["pipeline_id", "stage_id"]),
    ):
        op.create_index(name, "opportunities", columns)
    op.create_table(
        "opportunity_lines",
        sa.Column(
            "opportunity_id",
            sa.String(36),
            sa.ForeignKey("opportunities.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("product", sa.String(64), nullable=False, server_default=""),
        sa.Column("sku", sa.String(64), nullable=False, server_default=""),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("unit_price_minor", sa.BigInteger, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "opportunity_stage_history",
        sa.Column(
            "opportunity_id",
            sa.String(36),
            sa.ForeignKey("opportunities.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("pipeline_id", sa.String(63), nullable=False),
        sa.Column("stage_id", sa.String(63), nullable=False),
        sa.Column("enter_time", TS, nullable=False),
        sa.Column("changed_by", sa.String(128), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency_code", sa.String(3), nullable=False),
        sa.Column("probability", sa.Integer, nullable=False),
        sa.Column("forecast_category", sa.String(16), nullable=False),
    )
    op.create_index(
        "ix_opportunity_stage_history_stage",
        "opportunity_stage_history",
        ["pipeline_id", "stage_id", "enter_time"],
    )

    now = datetime.now(UTC)
    if op.get_bind().dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # stored naive-UTC on SQLite, as UtcDateTime does
    op.bulk_insert(
        pipelines,
        [
            {
                "id": "default",
                "display_name": "Default sales pipeline",
                "currency_code": "",
                "is_default": True,
                "create_time": now,
                "update_time": now,
                "version": 1,
            }
        ],
    )
    op.bulk_insert(
        stages,
        [
            {
                "pipeline_id": "default",
                "id": stage_id,
                "position": position,
                "display_name": title,
                "default_probability": probability,
                "forecast_category": category,
                "is_won": won,
                "is_lost": lost,
            }
            for position, (stage_id, title, probability, category, won, lost) in enumerate(
                DEFAULT_STAGES, start=1
            )
        ],
    )


def downgrade() -> None:
    op.drop_table("opportunity_stage_history")
    op.drop_table("opportunity_lines")
    op.drop_table("opportunities")
    op.drop_table("pipeline_stages")
    op.drop_table("pipelines")
