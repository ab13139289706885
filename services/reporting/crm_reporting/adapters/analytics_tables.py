"""Customer analytics read model (on the reporting `metadata`): scores with explained factors,
the activity log behind recency/trend and the lifecycle history behind the churn rate."""

from __future__ import annotations

import sqlalchemy as sa

from crm_reporting.adapters.tables import metadata
from crm_shared.db.types import UtcDateTime

# One row per scored customer (owner/team copied for the data scope of ListCustomerScores).
customer_scores = sa.Table(
    "customer_scores",
    metadata,
    sa.Column("customer", sa.String(100), primary_key=True),
    sa.Column("owner", sa.String(128), nullable=False, server_default=""),
    sa.Column("team", sa.String(128), nullable=False, server_default=""),
    # crm.reporting.v1.AbcClass / ChurnRisk numbers.
    sa.Column("abc_class", sa.Integer, nullable=False),
    sa.Column("rfm_segment", sa.String(32), nullable=False),
    sa.Column("recency_score", sa.Integer, nullable=False),
    sa.Column("frequency_score", sa.Integer, nullable=False),
    sa.Column("monetary_score", sa.Integer, nullable=False),
    sa.Column("health_score", sa.Integer, nullable=False),
    sa.Column("churn_risk", sa.Integer, nullable=False),
    # [{"name", "value", "impact", "explanation"}, …]
    sa.Column("factors", sa.JSON, nullable=False),
    # The time the score is "as of" (event time or timer due time: deterministic on rebuild).
    sa.Column("compute_time", UtcDateTime(), nullable=False),
    sa.Index("ix_customer_scores_health", "health_score", "customer"),
    sa.Index("ix_customer_scores_owner", "owner"),
    sa.Index("ix_customer_scores_team", "team"),
)

# One row per activity event of a customer (key = event id): recency, trend and payment currencies.
analytics_activity = sa.Table(
    "analytics_activity",
    metadata,
    sa.Column("key", sa.String(120), primary_key=True),
    sa.Column("customer", sa.String(100), nullable=False),
    sa.Column("time", UtcDateTime(), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False, server_default=""),
    sa.Index("ix_analytics_activity_customer_time", "customer", "time"),
)

# Lifecycle stage as of each customer snapshot (for churn rate over a period).
analytics_lifecycle = sa.Table(
    "analytics_lifecycle",
    metadata,
    sa.Column("customer", sa.String(100), primary_key=True),
    sa.Column("time", UtcDateTime(), primary_key=True),
    sa.Column("stage", sa.String(32), nullable=False),
)
