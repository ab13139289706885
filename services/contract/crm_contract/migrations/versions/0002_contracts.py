"""Contracts and document number counters.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from crm_shared.db.types import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contracts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("number", sa.String(32), nullable=False, unique=True),
        sa.Column("customer", sa.String(100), nullable=False),
        sa.Column("opportunity", sa.String(100), nullable=False, server_default=""),
        sa.Column("title", sa.String(200), nullable=False, server_default=""),
        sa.Column("contract_type", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("line_items", sa.JSON, nullable=False),
        sa.Column("signed_date", sa.Date, nullable=True),
        sa.Column("start_date", sa.Date, nullable=True),
        sa.Column("end_date", sa.Date, nullable=True),
        sa.Column("payment_terms", sa.Text, nullable=False, server_default=""),
        sa.Column("customer_signer", sa.String(128), nullable=False, server_default=""),
        sa.Column("company_signer", sa.String(128), nullable=False, server_default=""),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("team", sa.String(128), nullable=False, server_default=""),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("approval_id", sa.String(36), nullable=False, server_default=""),
        sa.Column("renewal_of", sa.String(36), nullable=False, server_default=""),
        sa.Column("renewed_by", sa.String(36), nullable=False, server_default=""),
        sa.Column("renewal_notice_days", sa.Integer, nullable=False),
        sa.Column("termination_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("attachments", sa.JSON, nullable=False),
        sa.Column("notes", sa.Text, nullable=False, server_default=""),
        sa.Column("won_opportunity", sa.String(100), nullable=True, unique=True),
        sa.Column("received", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("credit", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("pending_approval", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("overdue", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("create_time", UtcDateTime(), nullable=False),
        sa.Column("update_time", UtcDateTime(), nullable=False),
        sa.Column("row_version", sa.Integer, nullable=False),
    )
    op.create_index("ix_contracts_create", "contracts", ["create_time", "id"])
    op.create_index("ix_contracts_update", "contracts", ["update_time", "id"])
    op.create_index("ix_contracts_end", "contracts", ["end_date", "id"])
    op.create_index("ix_contracts_owner_create", "contracts", ["owner", "create_time", "id"])
    op.create_index("ix_contracts_team_create", "contracts", ["team", "create_time", "id"])
    op.create_index("ix_contracts_customer", "contracts", ["customer", "create_time", "id"])
    op.create_index("ix_contracts_status_end", "contracts", ["status", "end_date"])
    op.create_table(
        "contract_document_counters",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("last_value", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("contract_document_counters")
    op.drop_table("contracts")
