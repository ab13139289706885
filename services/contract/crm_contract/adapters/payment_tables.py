"""Installments, payments, their allocations, invoices and invoice links (on the contract `metadata`).

Each row carries the contract's customer/owner/team, copied when written, so data scope
is a predicate on the row itself (no join). There is no foreign key to `contracts`:
the contract id is indexed, and the payment code always locks the contract row first.
Amounts are integers in minor units; dates are calendar dates (UTC).
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_contract.adapters.tables import metadata
from crm_shared.db.types import UtcDateTime


def _scope_columns() -> list[sa.Column]:
    return [
        sa.Column("customer", sa.String(100), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("team", sa.String(128), nullable=False, server_default=""),
    ]


installments = sa.Table(
    "installments",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("contract_id", sa.String(36), nullable=False),
    # 1, 2, 3… in due-date order; renumbered when the plan is replaced (allocations use the id).
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
    *_scope_columns(),
    sa.UniqueConstraint("contract_id", "number", name="uq_installments_contract_number"),
    sa.CheckConstraint("paid_amount >= 0 AND paid_amount <= amount", name="ck_installments_paid_in_range"),
    sa.Index("ix_installments_due", "due_date", "id"),
    sa.Index("ix_installments_owner_due", "owner", "due_date", "id"),
    sa.Index("ix_installments_team_due", "team", "due_date", "id"),
)

# The plan's own version (etag) and update time: one row per contract that has a plan.
payment_plans = sa.Table(
    "payment_plans",
    metadata,
    sa.Column("contract_id", sa.String(36), primary_key=True),
    sa.Column("update_time", UtcDateTime(), nullable=False),
    sa.Column("row_version", sa.Integer, nullable=False),
)

payments = sa.Table(
    "payments",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("number", sa.String(32), nullable=False, unique=True),
    sa.Column("contract_id", sa.String(36), nullable=False),
    *_scope_columns(),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("unapplied", sa.BigInteger, nullable=False),
    sa.Column("received_date", sa.Date, nullable=False),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("reference", sa.String(200), nullable=False, server_default=""),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("allow_overpayment", sa.Boolean, nullable=False),
    # Allocations asked for at record time ([[installment_id, amount], …]); applied on approval.
    sa.Column("requested_allocations", sa.JSON, nullable=False),
    sa.Column("approval", sa.String(100), nullable=False, server_default=""),
    sa.Column("recorded_by", sa.String(128), nullable=False),
    sa.Column("void_reason", sa.Text, nullable=False, server_default=""),
    sa.Column("create_time", UtcDateTime(), nullable=False),
    sa.Column("update_time", UtcDateTime(), nullable=False),
    sa.Column("row_version", sa.Integer, nullable=False),
    sa.CheckConstraint("amount > 0 AND unapplied >= 0", name="ck_payments_amounts"),
    sa.Index("ix_payments_contract", "contract_id", "create_time"),
    sa.Index("ix_payments_create", "create_time", "id"),
    sa.Index("ix_payments_received", "received_date", "id"),
    sa.Index("ix_payments_owner_create", "owner", "create_time", "id"),
    sa.Index("ix_payments_team_create", "team", "create_time", "id"),
)

# What a confirmed payment applied; kept after a void (the payment shows what was reversed).
payment_allocations = sa.Table(
    "payment_allocations",
    metadata,
    sa.Column("payment_id", sa.String(36), sa.ForeignKey("payments.id"), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    # "" when applied to a contract without a plan.
    sa.Column("installment_id", sa.String(36), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.CheckConstraint("amount > 0", name="ck_payment_allocations_positive"),
    sa.Index("ix_payment_allocations_installment", "installment_id"),
)

invoices = sa.Table(
    "invoices",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("number", sa.String(64), nullable=False, unique=True),
    sa.Column("contract_id", sa.String(36), nullable=False),
    *_scope_columns(),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("issued_date", sa.Date, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
    sa.Column("void_reason", sa.Text, nullable=False, server_default=""),
    sa.Column("create_time", UtcDateTime(), nullable=False),
    sa.Column("update_time", UtcDateTime(), nullable=False),
    sa.Column("row_version", sa.Integer, nullable=False),
    sa.CheckConstraint("amount > 0", name="ck_invoices_amount_positive"),
    sa.Index("ix_invoices_contract", "contract_id", "status"),
    sa.Index("ix_invoices_create", "create_time", "id"),
    sa.Index("ix_invoices_owner_create", "owner", "create_time", "id"),
    sa.Index("ix_invoices_team_create", "team", "create_time", "id"),
)

# An invoice covers installments and/or payments of its contract: target_kind "installment" | "payment".
invoice_links = sa.Table(
    "invoice_links",
    metadata,
    sa.Column("invoice_id", sa.String(36), sa.ForeignKey("invoices.id"), primary_key=True),
    sa.Column("target_kind", sa.String(16), primary_key=True),
    sa.Column("target_id", sa.String(36), primary_key=True),
    sa.Index("ix_invoice_links_target", "target_kind", "target_id"),
)
