"""Campaigns and their members (on the sales `metadata`); created by migration 0005.

The budget is BIGINT minor units plus an ISO-4217 code. A lead or contact is a member of a
campaign at most once (unique (campaign_id, member)). Stats read `leads.campaign_id` and
`opportunities.campaign` of the same database.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_sales.adapters.tables import metadata
from crm_shared.db.types import UtcDateTime

campaigns = sa.Table(
    "campaigns",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("display_name", sa.String(200), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("start_time", UtcDateTime(), nullable=True),
    sa.Column("end_time", UtcDateTime(), nullable=True),
    sa.Column("budget_currency", sa.String(3), nullable=False),
    sa.Column("budget_minor", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("create_time", UtcDateTime(), nullable=False),
    sa.Column("update_time", UtcDateTime(), nullable=False),
    sa.Column("row_version", sa.Integer, nullable=False),
    sa.Index("ix_campaigns_create", "create_time", "id"),
    sa.Index("ix_campaigns_start", "start_time", "id"),
)

campaign_members = sa.Table(
    "campaign_members",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column(
        "campaign_id", sa.String(36), sa.ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("member", sa.String(200), nullable=False),
    sa.Column("response", sa.String(16), nullable=False),
    sa.Column("response_time", UtcDateTime(), nullable=True),
    sa.Column("notes", sa.Text, nullable=False, server_default=""),
    sa.Column("create_time", UtcDateTime(), nullable=False),
    sa.Column("update_time", UtcDateTime(), nullable=False),
    sa.Column("row_version", sa.Integer, nullable=False),
    sa.UniqueConstraint("campaign_id", "member", name="uq_campaign_members_member"),
    sa.Index("ix_campaign_members_list", "campaign_id", "create_time", "id"),
    sa.Index("ix_campaign_members_response", "campaign_id", "response"),
)
