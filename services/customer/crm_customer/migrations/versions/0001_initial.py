"""Customers, contacts, identifiers (blind indexes), tags, and the platform tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from crm_shared.db.tables import create_platform_tables, drop_platform_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "customers",
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
        sa.Column("phones_enc", sa.LargeBinary, nullable=True),
        sa.Column("emails_enc", sa.LargeBinary, nullable=True),
        sa.Column("tax_id_enc", sa.LargeBinary, nullable=True),
        sa.Column("address_enc", sa.LargeBinary, nullable=True),
        sa.Column("create_time", TS, nullable=False),
        sa.Column("update_time", TS, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_customers_create", "customers", ["create_time", "id"])
    op.create_index("ix_customers_update", "customers", ["update_time", "id"])
    op.create_index("ix_customers_display_name", "customers", ["display_name", "id"])
    op.create_index("ix_customers_owner_create", "customers", ["owner", "create_time", "id"])
    op.create_index("ix_customers_team_create", "customers", ["team", "create_time", "id"])
    op.create_table(
        "customer_identifiers",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column(
            "customer_id", sa.String(36), sa.ForeignKey("customers.id", ondelete="CASCADE"), nullable=False
        ),
    )
    op.create_index("ix_customer_identifiers_customer", "customer_identifiers", ["customer_id"])
    op.create_table(
        "customer_tags",
        sa.Column(
            "customer_id", sa.String(36), sa.ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("tag", sa.String(64), primary_key=True),
    )
    op.create_index("ix_customer_tags_tag", "customer_tags", ["tag", "customer_id"])
    op.create_table(
        "contacts",
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
        sa.Column("create_time", TS, nullable=False),
        sa.Column("update_time", TS, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_contacts_customer_create", "contacts", ["customer_id", "create_time", "id"])
    create_platform_tables(op)


def downgrade() -> None:
    drop_platform_tables(op)
    for table in ("contacts", "customer_tags", "customer_identifiers", "customers"):
        op.drop_table(table)
