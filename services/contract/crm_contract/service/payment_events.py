"""Installments, payments and invoices as the events carry them (snapshots) and their subjects."""

from __future__ import annotations

from datetime import date

from crm.contract.v1 import common_pb2, events_pb2
from crm_contract.domain.contracts import Contract
from crm_contract.domain.invoices import Invoice, InvoiceStatus
from crm_contract.domain.payments import Installment, InstallmentStatus, Payment, PaymentMethod, PaymentStatus
from crm_contract.service.contract_snapshots import date_pb, money

SUBJECT_PLAN_SET = "crm.contract.payment_plan.set"
SUBJECT_PAYMENT_DUE = "crm.contract.installment.due"
SUBJECT_PAYMENT_OVERDUE = "crm.contract.installment.overdue"
SUBJECT_INSTALLMENT_PAID = "crm.contract.installment.paid"
SUBJECT_PAYMENT_RECORDED = "crm.contract.payment.recorded"
SUBJECT_PAYMENT_CONFIRMED = "crm.contract.payment.confirmed"
SUBJECT_PAYMENT_REJECTED = "crm.contract.payment.rejected"
SUBJECT_PAYMENT_VOIDED = "crm.contract.payment.voided"
SUBJECT_INVOICE_ISSUED = "crm.contract.invoice.issued"
SUBJECT_INVOICE_PAID = "crm.contract.invoice.paid"
SUBJECT_INVOICE_VOIDED = "crm.contract.invoice.voided"

INSTALLMENT_STATUS_TO_PB = {
    s: common_pb2.InstallmentStatus.Value(f"INSTALLMENT_STATUS_{s.name}") for s in InstallmentStatus
}
PAYMENT_STATUS_TO_PB = {s: common_pb2.PaymentStatus.Value(f"PAYMENT_STATUS_{s.name}") for s in PaymentStatus}
PAYMENT_METHOD_TO_PB = {m: common_pb2.PaymentMethod.Value(f"PAYMENT_METHOD_{m.name}") for m in PaymentMethod}
INVOICE_STATUS_TO_PB = {s: common_pb2.InvoiceStatus.Value(f"INVOICE_STATUS_{s.name}") for s in InvoiceStatus}


def installment_snapshot(i: Installment, contract: Contract, today: date) -> events_pb2.InstallmentSnapshot:
    return events_pb2.InstallmentSnapshot(
        name=i.name,
        contract=contract.name,
        customer=contract.customer,
        number=i.number,
        due_date=date_pb(i.due_date),
        amount=money(contract.currency, i.amount),
        paid_amount=money(contract.currency, i.paid_amount),
        status=INSTALLMENT_STATUS_TO_PB[i.status(today)],
        owner=contract.owner,
        team=contract.team,
    )


def emit_installment_paid(uow, installment: Installment, contract: Contract, today: date) -> None:
    uow.emit(
        SUBJECT_INSTALLMENT_PAID,
        events_pb2.InstallmentPaid(
            installment=installment_snapshot(installment, contract, today),
            paid_date=date_pb(installment.paid_date),
        ),
        resource=installment.name,
    )


def payment_snapshot(p: Payment, installment_names: dict[str, str]) -> events_pb2.PaymentSnapshot:
    return events_pb2.PaymentSnapshot(
        name=p.name,
        number=p.number,
        contract=p.contract_name,
        customer=p.customer,
        amount=money(p.currency, p.amount),
        received_date=date_pb(p.received_date),
        method=PAYMENT_METHOD_TO_PB[p.method],
        status=PAYMENT_STATUS_TO_PB[p.status],
        allocations=[
            events_pb2.AllocationSnapshot(
                installment=installment_names.get(a.installment_id, ""), amount=money(p.currency, a.amount)
            )
            for a in p.allocations
        ],
        unapplied_amount=money(p.currency, p.unapplied),
        owner=p.owner,
        team=p.team,
    )


def invoice_snapshot(invoice: Invoice) -> events_pb2.InvoiceSnapshot:
    return events_pb2.InvoiceSnapshot(
        name=invoice.name,
        number=invoice.number,
        contract=invoice.contract_name,
        customer=invoice.customer,
        amount=money(invoice.currency, invoice.amount),
        issued_date=date_pb(invoice.issued_date),
        status=INVOICE_STATUS_TO_PB[invoice.status],
        owner=invoice.owner,
        team=invoice.team,
    )
