"""Invoices: pure rules (amount limits, links, the DRAFT -> ISSUED -> PAID / VOID machine)."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime

from crm_shared.errors import FailedPrecondition, InvalidArgument, Violations

NUMBER_MAX_LEN = 64


class InvoiceStatus(enum.Enum):
    DRAFT = "draft"
    ISSUED = "issued"
    PAID = "paid"
    VOID = "void"


@dataclass
class Invoice:
    id: str
    number: str
    contract_id: str
    customer: str
    owner: str
    team: str
    currency: str
    amount: int
    status: InvoiceStatus
    create_time: datetime
    update_time: datetime
    issued_date: date | None = None
    installment_ids: list[str] = field(default_factory=list)
    payment_ids: list[str] = field(default_factory=list)
    note: str = ""
    void_reason: str = ""
    row_version: int = 1

    @property
    def name(self) -> str:
        return f"invoices/{self.id}"

    @property
    def contract_name(self) -> str:
        return f"contracts/{self.contract_id}"


@dataclass(frozen=True)
class LinkedInstallment:
    id: str
    amount: int
    paid: bool


@dataclass(frozen=True)
class LinkedPayment:
    id: str
    applied: int  # what the payment counts for (0 unless confirmed)


def invoice_amount(
    given: int | None,
    *,
    given_currency: str,
    currency: str,
    installments: Sequence[LinkedInstallment],
    already_invoiced: int,
    contract_amount: int,
) -> int:
    """The amount (given, else the linked installments' sum), checked against the contract's amount."""
    violations = Violations()
    if given is not None and given_currency != currency:
        violations.add("invoice.amount.currency_code", f"must be the contract's currency {currency}")
    amount = given if given is not None else sum(i.amount for i in installments)
    if amount <= 0:
        violations.add("invoice.amount", "must be positive (give it, or link installments)")
    violations.raise_if_any("the invoice is invalid")
    if already_invoiced + amount > contract_amount:
        raise InvalidArgument(
            f"invoices would total {already_invoiced + amount}, above the contract amount {contract_amount}",
            reason="INVOICE_EXCEEDS_CONTRACT",
            field_violations=[],
            metadata={"invoiced": str(already_invoiced), "contract_amount": str(contract_amount)},
        )
    return amount


def is_covered(
    invoice: Invoice, installments: Sequence[LinkedInstallment], payments: Sequence[LinkedPayment]
) -> bool:
    """Every linked installment paid, or the linked payments cover the amount; unlinked never auto-pays."""
    if installments and all(i.paid for i in installments):
        return True
    return bool(payments) and sum(p.applied for p in payments) >= invoice.amount


def issue(invoice: Invoice, *, issued_date: date, now: datetime) -> Invoice:
    require_status(invoice, {InvoiceStatus.DRAFT}, "issued")
    return replace(
        invoice,
        status=InvoiceStatus.ISSUED,
        issued_date=issued_date,
        update_time=now,
        row_version=invoice.row_version + 1,
    )


def mark_paid(invoice: Invoice, *, now: datetime) -> Invoice:
    require_status(invoice, {InvoiceStatus.ISSUED}, "paid")
    return replace(invoice, status=InvoiceStatus.PAID, update_time=now, row_version=invoice.row_version + 1)


def reopen(invoice: Invoice, *, now: datetime) -> Invoice:
    """A void of a payment took back what paid it: PAID -> ISSUED."""
    require_status(invoice, {InvoiceStatus.PAID}, "reopened")
    return replace(invoice, status=InvoiceStatus.ISSUED, update_time=now, row_version=invoice.row_version + 1)


def void(invoice: Invoice, *, reason: str, now: datetime) -> Invoice:
    if not reason.strip():
        raise InvalidArgument.for_field("reason", "is required")
    require_status(invoice, {InvoiceStatus.DRAFT, InvoiceStatus.ISSUED}, "voided")
    return replace(
        invoice,
        status=InvoiceStatus.VOID,
        void_reason=reason,
        update_time=now,
        row_version=invoice.row_version + 1,
    )


def require_status(invoice: Invoice, allowed: set[InvoiceStatus], action: str) -> None:
    if invoice.status not in allowed:
        raise FailedPrecondition(
            f"{invoice.name} is {invoice.status.value}; it cannot be {action}",
            reason="INVOICE_STATUS_INVALID",
            metadata={"resource": invoice.name, "status": invoice.status.value},
        )
