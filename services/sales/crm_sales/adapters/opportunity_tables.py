"""Pipelines, stages, opportunities, their product lines and stage history (migration 0003).

Money is BIGINT minor units plus an ISO-4217 code. `weighted_amount_minor` and
`forecast_category` are stored (derived by the domain on every write) so the
forecast is one indexed GROUP BY, not a join over stages.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_sales.adapters.tables import metadata
from crm_shared.db.types import UtcDateTime

pipelines = sa.Table(
    "pipelines",
    metadata,
    sa.Column("id", sa.String(63), primary_key=True),
    sa.Column("display_name", sa.String(200), nullable=False),
    sa.Column("currency_code", sa.String(3), nullable=False, server_default=""),
    sa.Column("is_default", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("create_time", UtcDateTime(), nullable=False),
    sa.Column("update_time", UtcDateTime(), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
)

pipeline_stages = sa.Table(
    "pipeline_stages",
    metadata,
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

opportunities = sa.Table(
    "opportunities",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("customer_id", sa.String(36), nullable=False),
    sa.Column("contact", sa.String(120), nullable=False, server_default=""),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency_code", sa.String(3), nullable=False),
    sa.Column("weighted_amount_minor", sa.BigInteger, nullable=False),
    sa.Column("expected_close_time", UtcDateTime(), nullable=False),
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
    sa.Column("create_time", UtcDateTime(), nullable=False),
    sa.Column("update_time", UtcDateTime(), nullable=False),
    sa.Column("close_time", UtcDateTime(), nullable=True),
    sa.Column("version", sa.Integer, nullable=False),
    # Keyset list orders, optionally narrowed to an owner or a team (data scope).
    sa.Index("ix_opportunities_create", "create_time", "id"),
    sa.Index("ix_opportunities_owner_create", "owner", "create_time", "id"),
    sa.Index("ix_opportunities_team_create", "team", "create_time", "id"),
    sa.Index("ix_opportunities_customer", "customer_id", "create_time"),
    sa.Index("ix_opportunities_campaign", "campaign"),  # campaign stats (migration 0006)
    # Forecast: open ones by expected close, closed ones by close time, per owner / team.
    sa.Index("ix_opportunities_owner_expected", "owner", "state", "expected_close_time"),
    sa.Index("ix_opportunities_team_expected", "team", "state", "expected_close_time"),
    sa.Index("ix_opportunities_state_expected", "state", "expected_close_time"),
    sa.Index("ix_opportunities_owner_closed", "owner", "close_time"),
    sa.Index("ix_opportunities_team_closed", "team", "close_time"),
    sa.Index("ix_opportunities_closed", "close_time"),
    sa.Index("ix_opportunities_stage", "pipeline_id", "stage_id"),
)

opportunity_lines = sa.Table(
    "opportunity_lines",
    metadata,
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

opportunity_stage_history = sa.Table(
    "opportunity_stage_history",
    metadata,
    sa.Column(
        "opportunity_id",
        sa.String(36),
        sa.ForeignKey("opportunities.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("pipeline_id", sa.String(63), nullable=False),
    sa.Column("stage_id", sa.String(63), nullable=False),
    sa.Column("enter_time", UtcDateTime(), nullable=False),
    sa.Column("changed_by", sa.String(128), nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency_code", sa.String(3), nullable=False),
    sa.Column("probability", sa.Integer, nullable=False),
    sa.Column("forecast_category", sa.String(16), nullable=False),
    # Forecast-vs-actual and funnel reports read entries by stage and time.
    sa.Index("ix_opportunity_stage_history_stage", "pipeline_id", "stage_id", "enter_time"),
)
