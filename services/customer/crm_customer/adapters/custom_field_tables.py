"""Tables for custom field definitions and the uniqueness of custom field values.

`custom_field_values_unique` enforces "unique" definitions with a primary key
instead of a query: a query-then-insert check races on PostgreSQL (two
concurrent creates both see no duplicate), a key cannot. Values are stored as
blind-index digests (HMAC with the service's blind-index key), because a custom
field may well hold personal data.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_customer.adapters.tables import metadata
from crm_shared.db.types import UtcDateTime

custom_field_definitions = sa.Table(
    "custom_field_definitions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("resource_type", sa.String(16), nullable=False),  # customers / contacts
    sa.Column("key", sa.String(63), nullable=False),
    sa.Column("display_name", sa.String(200), nullable=False, server_default=""),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("allowed_values", sa.JSON, nullable=False),
    sa.Column("required", sa.Boolean, nullable=False),
    sa.Column("unique", sa.Boolean, nullable=False),
    sa.Column("filterable", sa.Boolean, nullable=False),
    sa.Column("create_time", UtcDateTime(), nullable=False),
    sa.Column("update_time", UtcDateTime(), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.UniqueConstraint("resource_type", "key", name="uq_custom_field_definitions_key"),
)

custom_field_values_unique = sa.Table(
    "custom_field_values_unique",
    metadata,
    sa.Column("definition_id", sa.String(36), primary_key=True),
    sa.Column("value_digest", sa.String(64), primary_key=True),
    sa.Column(
        "customer_id", sa.String(36), sa.ForeignKey("customers.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Index("ix_custom_field_values_unique_customer", "customer_id"),
)
