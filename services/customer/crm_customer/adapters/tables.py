"""The customer service's database schema (SQLAlchemy Core tables).

Phones, emails, tax ids and addresses are stored only as AES-GCM ciphertext;
`customer_identifiers` holds their blind indexes (HMAC) for exact lookups and
de-duplication, with a unique constraint so two customers can never share an
email, phone or tax id even when created at the same instant.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_shared.db.tables import platform_tables
from crm_shared.db.types import UtcDateTime

metadata = sa.MetaData()
platform = platform_tables(metadata)

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("display_name", sa.String(200), nullable=False),
    sa.Column("industry", sa.String(100), nullable=False, server_default=""),
    sa.Column("source", sa.String(64), nullable=False, server_default=""),
    sa.Column("tier", sa.String(1), nullable=True),
    sa.Column("lifecycle_stage", sa.String(16), nullable=False),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("team", sa.String(128), nullable=False, server_default=""),
    sa.Column("website", sa.String(512), nullable=False, server_default=""),
    sa.Column("custom_fields", sa.JSON, nullable=False),
    # Encrypted personal data (see crm_shared.pii.crypto); NULL when absent.
    sa.Column("phones_enc", sa.LargeBinary, nullable=True),
    sa.Column("emails_enc", sa.LargeBinary, nullable=True),
    sa.Column("tax_id_enc", sa.LargeBinary, nullable=True),
    sa.Column("address_enc", sa.LargeBinary, nullable=True),
    sa.Column("create_time", UtcDateTime(), nullable=False),
    sa.Column("update_time", UtcDateTime(), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    # Ownership and public pool (migration 0002).
    sa.Column("status", sa.String(16), nullable=False, server_default="owned"),
    sa.Column("locked", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("pool_id", sa.String(36), nullable=False, server_default=""),
    sa.Column("former_owner", sa.String(128), nullable=False, server_default=""),
    sa.Column("assign_time", UtcDateTime(), nullable=True),
    sa.Column("reclaim_time", UtcDateTime(), nullable=True),
    sa.Column("last_follow_up_time", UtcDateTime(), nullable=True),
    sa.Column("next_follow_up_time", UtcDateTime(), nullable=True),
    sa.Column("last_deal_time", UtcDateTime(), nullable=True),
    sa.Column("health_score", sa.Integer, nullable=False, server_default="0"),
    # compute_time of the reporting score applied last (migration 0008): older scores are ignored.
    sa.Column("score_time", UtcDateTime(), nullable=True),
    # The tier was last set by a reporting score, not by a person (a person's tier wins).
    sa.Column("tier_by_score", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("collaborators", sa.JSON, nullable=False, server_default="[]"),
    sa.Column("merged_into", sa.String(36), nullable=False, server_default=""),
    # Keyset indexes: each list order, optionally narrowed to an owner or a team (data scope).
    sa.Index("ix_customers_create", "create_time", "id"),
    sa.Index("ix_customers_update", "update_time", "id"),
    sa.Index("ix_customers_display_name", "display_name", "id"),
    sa.Index("ix_customers_owner_create", "owner", "create_time", "id"),
    sa.Index("ix_customers_team_create", "team", "create_time", "id"),
    sa.Index("ix_customers_status_pool", "status", "pool_id", "create_time", "id"),
)

# One data key per customer (envelope encryption), wrapped by the PII key ring. The customer's
# and its contacts' personal fields are sealed with it; deleting the row crypto-shreds them.
customer_keys = sa.Table(
    "customer_keys",
    metadata,
    sa.Column("customer_id", sa.String(36), primary_key=True),
    sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
    sa.Column("create_time", UtcDateTime(), nullable=False),
)

# Who shares a customer (the "own" scope includes them); mirrors customers.collaborators for queries.
customer_collaborators = sa.Table(
    "customer_collaborators",
    metadata,
    sa.Column(
        "customer_id", sa.String(36), sa.ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Index("ix_customer_collaborators_user", "user_id", "customer_id"),
)

customer_identifiers = sa.Table(
    "customer_identifiers",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),  # email / phone / tax_id
    sa.Column("digest", sa.String(64), primary_key=True),  # blind index of the normalized value
    sa.Column(
        "customer_id", sa.String(36), sa.ForeignKey("customers.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Index("ix_customer_identifiers_customer", "customer_id"),
)

customer_tags = sa.Table(
    "customer_tags",
    metadata,
    sa.Column(
        "customer_id", sa.String(36), sa.ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("tag", sa.String(64), primary_key=True),
    sa.Index("ix_customer_tags_tag", "tag", "customer_id"),
)

contacts = sa.Table(
    "contacts",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column(
        "customer_id", sa.String(36), sa.ForeignKey("customers.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("display_name", sa.String(200), nullable=False),
    sa.Column("title", sa.String(100), nullable=False, server_default=""),
    sa.Column("is_primary", sa.Boolean, nullable=False),
    sa.Column("notes", sa.Text, nullable=False, server_default=""),
    sa.Column("phones_enc", sa.LargeBinary, nullable=True),
    sa.Column("emails_enc", sa.LargeBinary, nullable=True),
    sa.Column("create_time", UtcDateTime(), nullable=False),
    sa.Column("update_time", UtcDateTime(), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Index("ix_contacts_customer_create", "customer_id", "create_time", "id"),
)
