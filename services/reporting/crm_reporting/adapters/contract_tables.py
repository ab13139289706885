"""Read-model tables of the contract area (on the reporting `metadata`): contracts, installments,
payments and their allocations, projected from the events on stream CRM_CONTRACT.

Amounts are integers in minor units with their currency; dates are calendar dates (UTC).
Every row carries the customer/owner/team it was published with, so data scope is a predicate
on the row itself. `event_time` is the occurred_at of the event whose snapshot the row holds:
an older snapshot never overwrites a newer one (out-of-order delivery).

Paid amounts are NOT stored on installments: an installment's paid amount is, authoritatively,
the sum of the allocations of the payments whose latest status is CONFIRMED (a void or a
rejection makes them count for nothing). The paid amounts in installment snapshots are
ignored, so a payment event and an InstallmentPaid event can never count the same money twice.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_reporting.adapters.tables import metadata
from crm_shared.db.types import UtcDateTime


def _scope_columns() -> list[sa.Column]:
    return [
        sa.Column("customer", sa.String(100), nullable=False, server_default=""),
        sa.Column("owner", sa.String(128), nullable=False, server_default=""),
        sa.Column("team", sa.String(128), nullable=False, server_default=""),
    ]


# One row per contract ("contracts/{id}"), the latest snapshot by event time.
report_contracts = sa.Table(
    "report_contracts",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("number", sa.String(64), nullable=False, server_default=""),
    *_scope_columns(),
    sa.Column("opportunity", sa.String(100), nullable=False, server_default=""),
    sa.Column("currency", sa.String(3), nullable=False, server_default=""),
    sa.Column("amount_minor", sa.BigInteger, nullable=False, server_default="0"),
    # DRAFT, PENDING_APPROVAL, APPROVED, REJECTED, ACTIVE, EXPIRED, TERMINATED (ContractStatus names).
    sa.Column("status", sa.String(32), nullable=False, server_default=""),
    sa.Column("start_date", sa.Date, nullable=True),
    sa.Column("end_date", sa.Date, nullable=True),
    sa.Column("signed_date", sa.Date, nullable=True),
    sa.Column("renewal_of", sa.String(100), nullable=False, server_default=""),
    sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("event_time", UtcDateTime(), nullable=False),
    sa.Index("ix_report_contracts_customer", "customer", "name"),
    sa.Index("ix_report_contracts_owner", "owner", "name"),
    sa.Index("ix_report_contracts_team", "team", "name"),
)

# The time of the latest PaymentPlanSet applied per contract: installments not in that plan are
# gone, and an installment event older than it cannot bring one back.
report_payment_plans = sa.Table(
    "report_payment_plans",
    metadata,
    sa.Column("contract", sa.String(100), primary_key=True),
    sa.Column("event_time", UtcDateTime(), nullable=False),
)

# Installments ("contracts/{c}/installments/{n}"): due date and amount (no paid amount, see above).
report_installments = sa.Table(
    "report_installments",
    metadata,
    sa.Column("name", sa.String(160), primary_key=True),
    sa.Column("contract", sa.String(100), nullable=False),
    *_scope_columns(),
    sa.Column("number", sa.Integer, nullable=False, server_default="0"),
    sa.Column("due_date", sa.Date, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("event_time", UtcDateTime(), nullable=False),
    sa.Index("ix_report_installments_contract", "contract", "name"),
    sa.Index("ix_report_installments_due", "due_date", "name"),
    sa.Index("ix_report_installments_customer", "customer", "due_date"),
)

# Payments ("payments/{id}"): the latest status (PENDING_APPROVAL, CONFIRMED, REJECTED, VOIDED).
report_payments = sa.Table(
    "report_payments",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("number", sa.String(64), nullable=False, server_default=""),
    sa.Column("contract", sa.String(100), nullable=False, server_default=""),
    *_scope_columns(),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("received_date", sa.Date, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    # Payment statuses only move forward (pending -> confirmed -> voided; pending -> rejected):
    # the rank orders snapshots first, the event time breaks ties.
    sa.Column("status_rank", sa.Integer, nullable=False),
    sa.Column("event_time", UtcDateTime(), nullable=False),
    sa.Index("ix_report_payments_received", "received_date", "name"),
    sa.Index("ix_report_payments_customer", "customer", "received_date"),
    sa.Index("ix_report_payments_contract", "contract", "name"),
)

# The allocations of a payment's latest snapshot (replaced with it). `installment` is "" for
# money applied to a contract without a plan.
report_payment_allocations = sa.Table(
    "report_payment_allocations",
    metadata,
    sa.Column("payment", sa.String(100), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("contract", sa.String(100), nullable=False, server_default=""),
    sa.Column("installment", sa.String(160), nullable=False, server_default=""),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Index("ix_report_payment_allocations_installment", "installment", "payment"),
    sa.Index("ix_report_payment_allocations_contract", "contract", "payment"),
)

CONTRACT_TABLES = (
    report_contracts,
    report_payment_plans,
    report_installments,
    report_payments,
    report_payment_allocations,
)
