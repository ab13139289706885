"""Follow-up records (same metadata as the customer tables)."""

from __future__ import annotations

import sqlalchemy as sa

from crm_customer.adapters.tables import metadata
from crm_shared.db.types import UtcDateTime

follow_ups = sa.Table(
    "follow_ups",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column(
        "customer_id", sa.String(36), sa.ForeignKey("customers.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("follow_up_time", UtcDateTime(), nullable=False),
    sa.Column("author", sa.String(128), nullable=False),
    sa.Column("next_follow_up_time", UtcDateTime(), nullable=True),
    sa.Column("related_opportunity", sa.String(200), nullable=False, server_default=""),
    sa.Column("related_ticket", sa.String(200), nullable=False, server_default=""),
    sa.Column("create_time", UtcDateTime(), nullable=False),
    # Newest first per customer (keyset).
    sa.Index("ix_follow_ups_customer_time", "customer_id", "follow_up_time", "id"),
)
