"""Quotes, their archived versions, orders and document numbers (on the sales `metadata`).

Lines are stored as JSON on their quote/order row: they are a value object
always read and written with the document (never queried alone), and a
version snapshot is then just a copy of the row. Amounts are integers (minor
units) inside that JSON, never floats. Reporting's revenue-by-product comes
from the OrderCreated event's lines, not from these tables.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_sales.adapters.tables import metadata
from crm_shared.db.types import UtcDateTime


def _totals_columns() -> list[sa.Column]:
    return [
        sa.Column("subtotal", sa.BigInteger, nullable=False),
        sa.Column("discount_total", sa.BigInteger, nullable=False),
        sa.Column("tax_total", sa.BigInteger, nullable=False),
        sa.Column("grand_total", sa.BigInteger, nullable=False),
    ]


quotes = sa.Table(
    "quotes",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("number", sa.String(32), nullable=False, unique=True),
    sa.Column("customer", sa.String(100), nullable=False),
    sa.Column("opportunity", sa.String(100), nullable=False, server_default=""),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("price_book_id", sa.String(36), nullable=False, server_default=""),
    sa.Column("title", sa.String(200), nullable=False, server_default=""),
    sa.Column("notes", sa.Text, nullable=False, server_default=""),
    sa.Column("lines", sa.JSON, nullable=False),
    *_totals_columns(),
    sa.Column("version", sa.Integer, nullable=False),  # the quote's revision number
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("valid_until", UtcDateTime(), nullable=True),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("team", sa.String(128), nullable=False, server_default=""),
    sa.Column("order_id", sa.String(36), nullable=False, server_default=""),
    sa.Column("reject_reason", sa.Text, nullable=False, server_default=""),
    sa.Column("send_time", UtcDateTime(), nullable=True),
    sa.Column("decision_time", UtcDateTime(), nullable=True),
    sa.Column("create_time", UtcDateTime(), nullable=False),
    sa.Column("update_time", UtcDateTime(), nullable=False),
    sa.Column("row_version", sa.Integer, nullable=False),  # etag / optimistic concurrency
    sa.Index("ix_quotes_create", "create_time", "id"),
    sa.Index("ix_quotes_owner_create", "owner", "create_time", "id"),
    sa.Index("ix_quotes_team_create", "team", "create_time", "id"),
    sa.Index("ix_quotes_customer", "customer", "create_time", "id"),
    sa.Index("ix_quotes_status_valid", "status", "valid_until"),
)

# Read-only snapshots of superseded versions (the current version lives in `quotes`).
quote_versions = sa.Table(
    "quote_versions",
    metadata,
    sa.Column("quote_id", sa.String(36), sa.ForeignKey("quotes.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("snapshot", sa.JSON, nullable=False),
    sa.Column("archive_time", UtcDateTime(), nullable=False),
)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("number", sa.String(32), nullable=False, unique=True),
    # Unique: one quote becomes at most one order, whatever retries or races happen.
    sa.Column("quote_id", sa.String(36), nullable=True, unique=True),
    sa.Column("customer", sa.String(100), nullable=False),
    sa.Column("opportunity", sa.String(100), nullable=False, server_default=""),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("price_book_id", sa.String(36), nullable=False, server_default=""),
    sa.Column("title", sa.String(200), nullable=False, server_default=""),
    sa.Column("lines", sa.JSON, nullable=False),
    *_totals_columns(),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("fulfilment_state", sa.String(24), nullable=False),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("team", sa.String(128), nullable=False, server_default=""),
    sa.Column("cancel_reason", sa.Text, nullable=False, server_default=""),
    sa.Column("create_time", UtcDateTime(), nullable=False),
    sa.Column("update_time", UtcDateTime(), nullable=False),
    sa.Column("row_version", sa.Integer, nullable=False),
    sa.Index("ix_orders_create", "create_time", "id"),
    sa.Index("ix_orders_owner_create", "owner", "create_time", "id"),
    sa.Index("ix_orders_team_create", "team", "create_time", "id"),
    sa.Index("ix_orders_customer", "customer", "create_time", "id"),
)

# Human-readable document numbers ("Q-000042", "SO-000042"): one counter row per kind,
# incremented inside the creating transaction (row lock on PostgreSQL, the writer lock on SQLite).
document_counters = sa.Table(
    "sales_document_counters",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("last_value", sa.BigInteger, nullable=False),
)
