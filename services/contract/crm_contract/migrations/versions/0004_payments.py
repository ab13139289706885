"""Payment plans (installments), payments and allocations, invoices and their links.

No foreign key to `contracts` (its revision is a sibling branch): contract_id is indexed.

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


def _scope() -> list[sa.Column]:
    return [
        sa.Column("customer", sa.String(100), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("team", sa.String(128), nullable=False, server_default=""),
    ]


def _times() -> list[sa.Column]:
    return [
        sa.Column("create_time", UtcDateTime(), nullable=False),
        sa.Column("update_time", UtcDateTime(), nullable=False),
        sa.Column("row_version", sa.Integer, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "installments",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("contract_id", sa.String(36), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("due_date", sa.Date, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("paid_amount", sa.BigInteger, nullable=False),
        sa.Column("paid_date", sa.Date, nullable=True),
        sa.Column("remind_before_days", sa.Integer, nullable=False),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        sa.Column("due_notified", sa.Boolean, nullable=False),
        sa.Column("overdue_notified", sa.Boolean, nullable=False),
        *_scope(),
        sa.UniqueConstraint("contract_id", "number", name="uq_installments_contract_number"),
        sa.CheckConstraint(
            "paid_amount >= 0 AND paid_amount <= amount", name="ck_installments_paid_in_range"
        ),
    )
    op.create_index("ix_installments_due", "installments", ["due_date", "id"])
    op.create_index("ix_installments_owner_due", "installments", ["owner", "due_date", "id"])
    op.create_index("ix_installments_team_due", "installments", ["team", "due_date", "id"])

    op.create_table(
        "payment_plans",
        sa.Column("contract_id", sa.String(36), primary_key=True),
        sa.Column("update_time", UtcDateTime(), nullable=False),
        sa.Column("row_version", sa.Integer, nullable=False),
    )

    op.create_table(
        "payments",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("number", sa.String(32), nullable=False, unique=True),
        sa.Column("contract_id", sa.String(36), nullable=False),
        *_scope(),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("unapplied", sa.BigInteger, nullable=False),
        sa.Column("received_date", sa.Date, nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("reference", sa.String(200), nullable=False, server_default=""),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("allow_overpayment", sa.Boolean, nullable=False),
        sa.Column("requested_allocations", sa.JSON, nullable=False),
        sa.Column("approval", sa.String(100), nullable=False, server_default=""),
        sa.Column("recorded_by", sa.String(128), nullable=False),
        sa.Column("void_reason", sa.Text, nullable=False, server_default=""),
        *_times(),
        sa.CheckConstraint("amount > 0 AND unapplied >= 0", name="ck_payments_amounts"),
    )
    op.create_index("ix_payments_contract", "payments", ["contract_id", "create_time"])
    op.create_index("ix_payments_create", "payments", ["create_time", "id"])
    op.create_index("ix_payments_received", "payments", ["received_date", "id"])
    op.create_index("ix_payments_owner_create", "payments", ["owner", "create_time", "id"])
    op.create_index("ix_payments_team_create", "payments", ["team", "create_time", "id"])

    op.create_table(
        "payment_allocations",
        sa.Column("payment_id", sa.String(36), sa.ForeignKey("payments.id"), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("installment_id", sa.String(36), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.CheckConstraint("amount > 0", name="ck_payment_allocations_positive"),
    )
    op.create_index("ix_payment_allocations_installment", "payment_allocations", ["installment_id"])

    op.create_table(
        "invoices",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("number", sa.String(64), nullable=False, unique=True),
        sa.Column("contract_id", sa.String(36), nullable=False),
        *_scope(),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("issued_date", sa.Date, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        sa.Column("void_reason", sa.Text, nullable=False, server_default=""),
        *_times(),
        sa.CheckConstraint("amount > 0", name="ck_invoices_amount_positive"),
    )
    op.create_index("ix_invoices_contract", "invoices", ["contract_id", "status"])
    op.create_index("ix_invoices_create", "invoices", ["create_time", "id"])
    op.create_index("ix_invoices_owner_create", "invoices", ["owner", "create_time", "id"])
    op.create_index("ix_invoices_team_create", "invoices", ["team", "create_time", "id"])

    op.create_table(
        "invoice_links",
        sa.Column("invoice_id", sa.String(36), sa.ForeignKey("invoices.id"), primary_key=True),
        sa.Column("target_kind", sa.String(16), primary_key=True),
        sa.Column("target_id", sa.String(36), primary_key=True),
    )
    op.create_index("ix_invoice_links_target", "invoice_links", ["target_kind", "target_id"])


def downgrade() -> None:
    for table in (
        "invoice_links",
        "invoices",
        "payment_allocations",
        "payments",
        "payment_plans",
        "installments",
    ):
        op.drop_table(table)
