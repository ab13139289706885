"""Contracts and the service's document numbers (on the contract `metadata`).

Line items and attachments are JSON on the contract row: a value object always
read and written with the contract, never queried alone; amounts inside are
integers (minor units). The balance columns are kept by the payment code in the
same transaction that records a payment.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_contract.adapters.tables import metadata
from crm_shared.db.types import UtcDateTime

contracts = sa.Table(
    "contracts",
    metadata,
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
    # Unique: a won opportunity becomes at most one contract, whatever redeliveries or races happen.
    sa.Column("won_opportunity", sa.String(100), nullable=True, unique=True),
    sa.Column("received", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("credit", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("pending_approval", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("overdue", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("create_time", UtcDateTime(), nullable=False),
    sa.Column("update_time", UtcDateTime(), nullable=False),
    sa.Column("row_version", sa.Integer, nullable=False),  # etag / optimistic concurrency
    sa.Index("ix_contracts_create", "create_time", "id"),
    sa.Index("ix_contracts_update", "update_time", "id"),
    sa.Index("ix_contracts_end", "end_date", "id"),
    sa.Index("ix_contracts_owner_create", "owner", "create_time", "id"),
    sa.Index("ix_contracts_team_create", "team", "create_time", "id"),
    sa.Index("ix_contracts_customer", "customer", "create_time", "id"),
    sa.Index("ix_contracts_status_end", "status", "end_date"),
)

# Human-readable numbers ("C-000042", and any other document kind of the service): one counter
# row per kind, incremented inside the creating transaction (row lock on PostgreSQL, the writer
# lock on SQLite), so numbers are unique and gap-free on commit.
document_counters = sa.Table(
    "contract_document_counters",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("last_value", sa.BigInteger, nullable=False),
)
