"""Products, price books and entries; quotes, quote versions, orders, document counters.

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from crm_shared.db.types import UtcDateTime

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None


def _times() -> list[sa.Column]:
    return [
        sa.Column("create_time", UtcDateTime(), nullable=False),
        sa.Column("update_time", UtcDateTime(), nullable=False),
    ]


def _totals() -> list[sa.Column]:
    return [
        sa.Column("subtotal", sa.BigInteger, nullable=False),
        sa.Column("discount_total", sa.BigInteger, nullable=False),
        sa.Column("tax_total", sa.BigInteger, nullable=False),
        sa.Column("grand_total", sa.BigInteger, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("sku", sa.String(64), nullable=False, unique=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("category", sa.String(100), nullable=False, server_default=""),
        sa.Column("unit", sa.String(32), nullable=False, server_default=""),
        sa.Column("list_price_currency", sa.String(3), nullable=False, server_default=""),
        sa.Column("list_price", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        *_times(),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_products_create", "products", ["create_time", "id"])
    op.create_index("ix_products_display_name", "products", ["display_name", "id"])
    op.create_index("ix_products_category", "products", ["category", "sku"])

    op.create_table(
        "price_books",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("is_default", sa.Boolean, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        *_times(),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_price_books_currency_default", "price_books", ["currency", "is_default"])
    op.create_index("ix_price_books_create", "price_books", ["create_time", "id"])

    op.create_table(
        "price_book_entries",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "price_book_id",
            sa.String(36),
            sa.ForeignKey("price_books.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("product_id", sa.String(36), sa.ForeignKey("products.id"), nullable=False),
        sa.Column("unit_price", sa.BigInteger, nullable=False),
        sa.Column("min_quantity", sa.BigInteger, nullable=False),
        *_times(),
        sa.Column("version", sa.Integer, nullable=False),
        sa.UniqueConstraint("price_book_id", "product_id", "min_quantity", name="uq_price_book_entries_tier"),
    )
    op.create_index(
        "ix_price_book_entries_book_create", "price_book_entries", ["price_book_id", "create_time", "id"]
    )
    op.create_index("ix_price_book_entries_product", "price_book_entries", ["product_id"])

    op.create_table(
        "quotes",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("number", sa.String(32), nullable=False, unique=True),
        sa.Column("customer", sa.String(100), nullable=False),
        sa.Column("opportunity", sa.String(100), nullable=False, server_default=""),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("price_book_id", sa.String(36), nullable=False, server_default=""),
        sa.Column("title", sa.String(200), nullable=False, server_default=""),
        sa.Column("notes", sa.Text, nullable=False, server_default=""),
        sa.Column("lines", sa.JSON, nullable=False),
        *_totals(),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("valid_until", UtcDateTime(), nullable=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("team", sa.String(128), nullable=False, server_default=""),
        sa.Column("order_id", sa.String(36), nullable=False, server_default=""),
        sa.Column("reject_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("send_time", UtcDateTime(), nullable=True),
        sa.Column("decision_time", UtcDateTime(), nullable=True),
        *_times(),
        sa.Column("row_version", sa.Integer, nullable=False),
    )
    op.create_index("ix_quotes_create", "quotes", ["create_time", "id"])
    op.create_index("ix_quotes_owner_create", "quotes", ["owner", "create_time", "id"])
    op.create_index("ix_quotes_team_create", "quotes", ["team", "create_time", "id"])
    op.create_index("ix_quotes_customer", "quotes", ["customer", "create_time", "id"])
    op.create_index("ix_quotes_status_valid", "quotes", ["status", "valid_until"])

    op.create_table(
        "quote_versions",
        sa.Column(
            "quote_id", sa.String(36), sa.ForeignKey("quotes.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("snapshot", sa.JSON, nullable=False),
        sa.Column("archive_time", UtcDateTime(), nullable=False),
    )

    op.create_table(
        "orders",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("number", sa.String(32), nullable=False, unique=True),
        sa.Column("quote_id", sa.String(36), nullable=True, unique=True),
        sa.Column("customer", sa.String(100), nullable=False),
        sa.Column("opportunity", sa.String(100), nullable=False, server_default=""),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("price_book_id", sa.String(36), nullable=False, server_default=""),
        sa.Column("title", sa.String(200), nullable=False, server_default=""),
        sa.Column("lines", sa.JSON, nullable=False),
        *_totals(),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("fulfilment_state", sa.String(24), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("team", sa.String(128), nullable=False, server_default=""),
        sa.Column("cancel_reason", sa.Text, nullable=False, server_default=""),
        *_times(),
        sa.Column("row_version", sa.Integer, nullable=False),
    )
    op.create_index("ix_orders_create", "orders", ["create_time", "id"])
    op.create_index("ix_orders_owner_create", "orders", ["owner", "create_time", "id"])
    op.create_index("ix_orders_team_create", "orders", ["team", "create_time", "id"])
    op.create_index("ix_orders_customer", "orders", ["customer", "create_time", "id"])

    op.create_table(
        "sales_document_counters",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("last_value", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "sales_document_counters",
        "orders",
        "quote_versions",
        "quotes",
        "price_book_entries",
        "price_books",
        "products",
    ):
        op.drop_table(table)
