"""Contract area read models: contracts, payment plans, installments, payments, allocations.

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


def _scope_columns() -> list[sa.Column]:
    return [
        sa.Column("customer", sa.String(100), nullable=False, server_default=""),
        sa.Column("owner", sa.String(128), nullable=False, server_default=""),
        sa.Column("team", sa.String(128), nullable=False, server_default=""),
    ]


def upgrade() -> None:
    op.create_table(
        "report_contracts",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("number", sa.String(64), nullable=False, server_default=""),
        *_scope_columns(),
        sa.Column("opportunity", sa.String(100), nullable=False, server_default=""),
        sa.Column("currency", sa.String(3), nullable=False, server_default=""),
        sa.Column("amount_minor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("status", sa.String(32), nullable=False, server_default=""),
        sa.Column("start_date", sa.Date, nullable=True),
        sa.Column("end_date", sa.Date, nullable=True),
        sa.Column("signed_date", sa.Date, nullable=True),
        sa.Column("renewal_of", sa.String(100), nullable=False, server_default=""),
        sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("event_time", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_report_contracts_customer", "report_contracts", ["customer", "name"])
    op.create_index("ix_report_contracts_owner", "report_contracts", ["owner", "name"])
    op.create_index("ix_report_contracts_team", "report_contracts", ["team", "name"])

    op.create_table(
        "report_payment_plans",
        sa.Column("contract", sa.String(100), primary_key=True),
        sa.Column("event_time", UtcDateTime(), nullable=False),
    )

    op.create_table(
        "report_installments",
        sa.Column("name", sa.String(160), primary_key=True),
        sa.Column("contract", sa.String(100), nullable=False),
        *_scope_columns(),
        sa.Column("number", sa.Integer, nullable=False, server_default="0"),
        sa.Column("due_date", sa.Date, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("event_time", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_report_installments_contract", "report_installments", ["contract", "name"])
    op.create_index("ix_report_installments_due", "report_installments", ["due_date", "name"])
    op.create_index("ix_report_installments_customer", "report_installments", ["customer", "due_date"])

    op.create_table(
        "report_payments",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("number", sa.String(64), nullable=False, server_default=""),
        sa.Column("contract", sa.String(100), nullable=False, server_default=""),
        *_scope_columns(),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("received_date", sa.Date, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("status_rank", sa.Integer, nullable=False),
        sa.Column("event_time", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_report_payments_received", "report_payments", ["received_date", "name"])
    op.create_index("ix_report_payments_customer", "report_payments", ["customer", "received_date"])
    op.create_index("ix_report_payments_contract", "report_payments", ["contract", "name"])

    op.create_table(
        "report_payment_allocations",
        sa.Column("payment", sa.String(100), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("contract", sa.String(100), nullable=False, server_default=""),
        sa.Column("installment", sa.String(160), nullable=False, server_default=""),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_report_payment_allocations_installment", "report_payment_allocations", ["installment", "payment"]
    )
    op.create_index(
        "ix_report_payment_allocations_contract", "report_payment_allocations", ["contract", "payment"]
    )


def downgrade() -> None:
    for table in (
        "report_payment_allocations",
        "report_payments",
        "report_installments",
        "report_payment_plans",
        "report_contracts",
    ):
        op.drop_table(table)
