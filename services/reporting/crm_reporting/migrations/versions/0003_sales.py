"""The sales read model: leads, opportunities, stage intervals, order lines, campaigns.

The tables are defined here as they were at this revision (a frozen copy, on a metadata of the
migration's own) and created with their indexes on the migration's connection.

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from crm_shared.db.types import UtcDateTime

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None

metadata = sa.MetaData()

sales_leads = sa.Table(
    "sales_leads",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    # Channel enum name without prefix ("WEB_FORM"); source = third-party platform, else channel.
    sa.Column("channel", sa.String(32), nullable=False, server_default=""),
    sa.Column("source", sa.String(128), nullable=False, server_default=""),
    sa.Column("campaign", sa.String(128), nullable=False, server_default=""),
    sa.Column("owner", sa.String(128), nullable=False, server_default=""),
    sa.Column("team", sa.String(128), nullable=False, server_default=""),
    sa.Column("create_time", UtcDateTime(), nullable=True),
    sa.Column("convert_time", UtcDateTime(), nullable=True),
    sa.Column("disqualify_time", UtcDateTime(), nullable=True),
    sa.Column("customer", sa.String(128), nullable=False, server_default=""),
    sa.Column("opportunity", sa.String(128), nullable=False, server_default=""),
    sa.Column("snapshot_time", UtcDateTime(), nullable=False),
    sa.Index("ix_sales_leads_create", "create_time"),
    sa.Index("ix_sales_leads_owner_create", "owner", "create_time"),
    sa.Index("ix_sales_leads_team_create", "team", "create_time"),
)

sales_opportunities = sa.Table(
    "sales_opportunities",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("customer", sa.String(128), nullable=False, server_default=""),
    sa.Column("pipeline", sa.String(128), nullable=False, server_default=""),
    sa.Column("stage", sa.String(256), nullable=False, server_default=""),
    sa.Column("currency", sa.String(3), nullable=False, server_default=""),
    sa.Column("amount_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("weighted_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("probability", sa.Integer, nullable=False, server_default="0"),
    sa.Column("forecast_category", sa.Integer, nullable=False, server_default="0"),
    sa.Column("expected_close_time", UtcDateTime(), nullable=True),
    sa.Column("owner", sa.String(128), nullable=False, server_default=""),
    sa.Column("team", sa.String(128), nullable=False, server_default=""),
    sa.Column("source_lead", sa.String(128), nullable=False, server_default=""),
    sa.Column("campaign", sa.String(128), nullable=False, server_default=""),
    sa.Column("create_time", UtcDateTime(), nullable=True),
    # open | won | lost (as of status_time); deleted is a flag: deletion is final whatever the order.
    sa.Column("status", sa.String(8), nullable=False, server_default="open"),
    sa.Column("status_time", UtcDateTime(), nullable=True),
    sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("won_time", UtcDateTime(), nullable=True),
    sa.Column("lost_time", UtcDateTime(), nullable=True),
    # "YYYY-MM" of the win or loss (UTC), for monthly grouping without dialect date functions.
    sa.Column("close_month", sa.String(7), nullable=False, server_default=""),
    # Seconds from creation to win.
    sa.Column("cycle_seconds", sa.Float, nullable=True),
    sa.Column("snapshot_time", UtcDateTime(), nullable=False),
    sa.Index("ix_sales_opps_customer", "customer"),
    # Won / lost in a period (covering the funnel's counts and the scope columns).
    sa.Index("ix_sales_opps_won", "won_time", "status", "deleted", "team", "owner", "pipeline"),
    sa.Index("ix_sales_opps_lost", "lost_time", "status", "deleted", "team", "owner", "pipeline"),
    sa.Index("ix_sales_opps_close", "expected_close_time"),
    sa.Index("ix_sales_opps_lead", "source_lead"),
)

# One row per stage an opportunity entered; left_at is the next entry's time (or win/loss).
sales_stage_intervals = sa.Table(
    "sales_stage_intervals",
    metadata,
    sa.Column("opportunity", sa.String(128), primary_key=True),
    sa.Column("entered_at", UtcDateTime(), primary_key=True),
    sa.Column("stage", sa.String(256), primary_key=True),
    sa.Column("pipeline", sa.String(128), nullable=False, server_default=""),
    sa.Column("left_at", UtcDateTime(), nullable=True),
    sa.Column("seconds_in_stage", sa.Float, nullable=True),
    # "won" / "lost" when the stage was entered by winning or losing (a closing stage), else "".
    sa.Column("closing", sa.String(8), nullable=False, server_default=""),
    # When the opportunity last entered the same stage before this entry (None: first time). The
    # opportunities that entered a stage in [start, end) are then the entries in the period whose
    # previous entry is before start: an exact distinct count without a DISTINCT.
    sa.Column("previous_entry_at", UtcDateTime(), nullable=True),
    sa.Column("owner", sa.String(128), nullable=False, server_default=""),
    sa.Column("team", sa.String(128), nullable=False, server_default=""),
    # Covering indexes of the funnel's per-stage subqueries (all / team / owner scope).
    sa.Index("ix_sales_intervals_stage_entered", "stage", "pipeline", "entered_at", "previous_entry_at"),
    sa.Index("ix_sales_intervals_stage_left", "stage", "pipeline", "left_at", "seconds_in_stage"),
    sa.Index(
        "ix_sales_intervals_team_entered", "team", "stage", "pipeline", "entered_at", "previous_entry_at"
    ),
    sa.Index("ix_sales_intervals_team_left", "team", "stage", "pipeline", "left_at", "seconds_in_stage"),
    sa.Index(
        "ix_sales_intervals_owner_entered", "owner", "stage", "pipeline", "entered_at", "previous_entry_at"
    ),
    sa.Index("ix_sales_intervals_owner_left", "owner", "stage", "pipeline", "left_at", "seconds_in_stage"),
)

# Every stage any opportunity entered: the funnel's stage order (first entry; closing kind)
# without scanning the intervals.
sales_stages = sa.Table(
    "sales_stages",
    metadata,
    sa.Column("stage", sa.String(256), primary_key=True),
    sa.Column("pipeline", sa.String(128), nullable=False, server_default=""),
    sa.Column("first_entered_at", UtcDateTime(), nullable=False),
    sa.Column("closing", sa.String(8), nullable=False, server_default=""),
)

# Opportunities now in each stage per (currency, owner, team), kept by the projection as each
# opportunity changes: the funnel's "current" without scanning the opportunities.
sales_stage_current = sa.Table(
    "sales_stage_current",
    metadata,
    sa.Column("stage", sa.String(256), primary_key=True),
    sa.Column("pipeline", sa.String(128), primary_key=True),
    sa.Column("currency", sa.String(3), primary_key=True),
    sa.Column("owner", sa.String(128), primary_key=True),
    sa.Column("team", sa.String(128), primary_key=True),
    sa.Column("opportunities", sa.BigInteger, nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Index("ix_sales_stage_current_team", "team"),
)

sales_order_lines = sa.Table(
    "sales_order_lines",
    metadata,
    sa.Column("order_name", sa.String(128), primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True),
    sa.Column("product", sa.String(128), nullable=False, server_default=""),
    sa.Column("sku", sa.String(128), nullable=False, server_default=""),
    sa.Column("quantity", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("currency", sa.String(3), nullable=False, server_default=""),
    sa.Column("net_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("customer", sa.String(128), nullable=False, server_default=""),
    sa.Column("owner", sa.String(128), nullable=False, server_default=""),
    sa.Column("team", sa.String(128), nullable=False, server_default=""),
    sa.Column("order_time", UtcDateTime(), nullable=False),
    sa.Index("ix_sales_order_lines_time", "order_time"),
)

sales_campaigns = sa.Table(
    "sales_campaigns",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("display_name", sa.String(200), nullable=False, server_default=""),
    sa.Column("channel", sa.String(64), nullable=False, server_default=""),
    sa.Column("currency", sa.String(3), nullable=False, server_default=""),
    sa.Column("budget_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("start_time", UtcDateTime(), nullable=True),
    sa.Column("end_time", UtcDateTime(), nullable=True),
    sa.Column("status", sa.String(32), nullable=False, server_default=""),
    sa.Column("responses", sa.Integer, nullable=False, server_default="0"),
    sa.Column("snapshot_time", UtcDateTime(), nullable=True),
)


TABLES = (
    sales_leads,
    sales_opportunities,
    sales_stage_intervals,
    sales_stages,
    sales_stage_current,
    sales_order_lines,
    sales_campaigns,
)


def upgrade() -> None:
    bind = op.get_bind()
    for table in TABLES:
        table.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(TABLES):
        table.drop(bind)
