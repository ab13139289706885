"""Products, price books and price book entries (SQLAlchemy Core, on the sales `metadata`)."""

from __future__ import annotations

import sqlalchemy as sa

from crm_sales.adapters.tables import metadata
from crm_shared.db.types import UtcDateTime

products = sa.Table(
    "products",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    # Unique: a second product with the same SKU is ALREADY_EXISTS (and a lost race an IntegrityError).
    sa.Column("sku", sa.String(64), nullable=False, unique=True),
    sa.Column("display_name", sa.String(200), nullable=False),
    sa.Column("category", sa.String(100), nullable=False, server_default=""),
    sa.Column("unit", sa.String(32), nullable=False, server_default=""),
    sa.Column("list_price_currency", sa.String(3), nullable=False, server_default=""),
    sa.Column("list_price", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("create_time", UtcDateTime(), nullable=False),
    sa.Column("update_time", UtcDateTime(), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Index("ix_products_create", "create_time", "id"),
    sa.Index("ix_products_display_name", "display_name", "id"),
    sa.Index("ix_products_category", "category", "sku"),
)

price_books = sa.Table(
    "price_books",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("display_name", sa.String(200), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("is_default", sa.Boolean, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("create_time", UtcDateTime(), nullable=False),
    sa.Column("update_time", UtcDateTime(), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Index("ix_price_books_currency_default", "currency", "is_default"),
    sa.Index("ix_price_books_create", "create_time", "id"),
)

price_book_entries = sa.Table(
    "price_book_entries",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column(
        "price_book_id", sa.String(36), sa.ForeignKey("price_books.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("product_id", sa.String(36), sa.ForeignKey("products.id"), nullable=False),
    sa.Column("unit_price", sa.BigInteger, nullable=False),
    sa.Column("min_quantity", sa.BigInteger, nullable=False),
    sa.Column("create_time", UtcDateTime(), nullable=False),
    sa.Column("update_time", UtcDateTime(), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.UniqueConstraint("price_book_id", "product_id", "min_quantity", name="uq_price_book_entries_tier"),
    sa.Index("ix_price_book_entries_book_create", "price_book_id", "create_time", "id"),
    sa.Index("ix_price_book_entries_product", "product_id"),
)
