"""Protobuf <-> domain for payment plans, payments, invoices and receivables."""

from __future__ import annotations

from datetime import date

from crm.contract.v1 import invoice_service_pb2 as inv_pb
from crm.contract.v1 import payment_service_pb2 as pb
from crm.contract.v1 import receivable_service_pb2 as rec_pb
from crm_contract.api.contract_mappers import optional_date
from crm_contract.domain.invoices import Invoice
from crm_contract.domain.payments import (
    DEFAULT_REMIND_BEFORE_DAYS,
    Installment,
    PaymentMethod,
    PlannedInstallment,
)
from crm_contract.service.contract_snapshots import date_pb, money, timestamp
from crm_contract.service.invoices import InvoiceInput
from crm_contract.service.payment_events import (
    INSTALLMENT_STATUS_TO_PB,
    INVOICE_STATUS_TO_PB,
    PAYMENT_METHOD_TO_PB,
    PAYMENT_STATUS_TO_PB,
)
from crm_contract.service.payment_plans import InstallmentRow, PlanView, plan_resource_id
from crm_contract.service.payments import PaymentInput, PaymentView, RequestedAllocation
from crm_contract.service.receivables import AgingTotals, ReceivableGroup
from crm_shared.aip.etag import etag_for
from crm_shared.errors import InvalidArgument

PAYMENT_METHOD_FROM_PB = {value: method for method, value in PAYMENT_METHOD_TO_PB.items()}


def id_from(name: str, collection: str, *, field: str = "name", suffix: str = "") -> str:
    """The id in "{collection}/{id}{suffix}"; INVALID_ARGUMENT for anything else."""
    prefix = f"{collection}/"
    if not name.startswith(prefix) or not name.endswith(suffix):
        raise InvalidArgument.for_field(field, f"must look like {collection}/{{id}}{suffix}")
    value = name[len(prefix) : len(name) - len(suffix)] if suffix else name[len(prefix) :]
    if not value or "/" in value:
        raise InvalidArgument.for_field(field, f"must look like {collection}/{{id}}{suffix}")
    return value


# --- plans and installments ------------------------------------------------------------------------------


def planned_installments(request: pb.SetPaymentPlanRequest) -> list[PlannedInstallment]:
    contract_id = id_from(request.name, "contracts", suffix="/paymentPlan")
    prefix = f"contracts/{contract_id}/installments/"
    planned = []
    for index, item in enumerate(request.installments):
        existing = ""
        if item.name:
            if not item.name.startswith(prefix):
                raise InvalidArgument.for_field(
                    f"installments[{index}].name", f"must be an installment of contracts/{contract_id}"
                )
            existing = item.name  # resolved to the stored id by the use case
        planned.append(
            PlannedInstallment(
                due_date=optional_date(item, "due_date", field=f"installments[{index}].due_date"),
                amount=item.amount.amount_minor,
                currency=item.amount.currency_code,
                remind_before_days=item.remind_before_days or DEFAULT_REMIND_BEFORE_DAYS,
                note=item.note,
                existing_id=existing,
            )
        )
    return planned


def installment_to_pb(
    i: Installment, *, today: date, currency: str, contract: str, customer: str, owner: str, team: str
) -> pb.Installment:
    return pb.Installment(
        name=i.name,
        number=i.number,
        due_date=date_pb(i.due_date),
        amount=money(currency, i.amount),
        remind_before_days=i.remind_before_days,
        status=INSTALLMENT_STATUS_TO_PB[i.status(today)],
        paid_amount=money(currency, i.paid_amount),
        outstanding_amount=money(currency, i.outstanding),
        paid_date=date_pb(i.paid_date),
        days_overdue=i.days_overdue(today),
        note=i.note,
        contract=contract,
        customer=customer,
        owner=owner,
        team=team,
    )


def installment_row_to_pb(row: InstallmentRow, today: date) -> pb.Installment:
    return installment_to_pb(
        row.installment,
        today=today,
        currency=row.currency,
        contract=row.contract_name,
        customer=row.customer,
        owner=row.owner,
        team=row.team,
    )


def plan_to_pb(plan: PlanView, today: date) -> pb.PaymentPlan:
    c = plan.contract
    message = pb.PaymentPlan(
        name=plan.name,
        contract=c.name,
        installments=[
            installment_to_pb(
                i,
                today=today,
                currency=c.currency,
                contract=c.name,
                customer=c.customer,
                owner=c.owner,
                team=c.team,
            )
            for i in plan.installments
        ],
        total=money(c.currency, plan.total),
        etag=etag_for(plan_resource_id(c.id), plan.version) if plan.version else "",
    )
    if plan.update_time is not None:
        message.update_time.CopyFrom(timestamp(plan.update_time))
    return message


# --- payments ---------------------------------------------------------------------------------------------


def payment_input(message: pb.Payment) -> PaymentInput:
    contract_id = id_from(message.contract, "contracts", field="payment.contract") if message.contract else ""
    return PaymentInput(
        contract_id=contract_id,
        amount=message.amount.amount_minor,
        currency=message.amount.currency_code,
        received_date=optional_date(message, "received_date", field="payment.received_date"),
        method=PAYMENT_METHOD_FROM_PB.get(message.method, PaymentMethod.UNSPECIFIED),
        reference=message.reference,
        note=message.note,
        allocations=[
            RequestedAllocation(a.installment, a.amount.amount_minor, a.amount.currency_code)
            for a in message.allocations
        ],
    )


def payment_to_pb(view: PaymentView) -> pb.Payment:
    p = view.payment
    message = pb.Payment(
        name=p.name,
        number=p.number,
        contract=p.contract_name,
        customer=p.customer,
        amount=money(p.currency, p.amount),
        received_date=date_pb(p.received_date),
        method=PAYMENT_METHOD_TO_PB[p.method],
        reference=p.reference,
        allocations=[
            pb.PaymentAllocation(
                installment=view.installment_names.get(a.installment_id, ""),
                amount=money(p.currency, a.amount),
            )
            for a in p.allocations
        ],
        unapplied_amount=money(p.currency, p.unapplied),
        status=PAYMENT_STATUS_TO_PB[p.status],
        approval=p.approval,
        owner=p.owner,
        team=p.team,
        recorded_by=p.recorded_by,
        note=p.note,
        void_reason=p.void_reason,
        etag=etag_for(p.id, p.row_version),
    )
    if p.create_time is not None:
        message.create_time.CopyFrom(timestamp(p.create_time))
    if p.update_time is not None:
        message.update_time.CopyFrom(timestamp(p.update_time))
    return message


# --- invoices ---------------------------------------------------------------------------------------------


def invoice_input(message: inv_pb.Invoice) -> InvoiceInput:
    return InvoiceInput(
        contract_id=id_from(message.contract, "contracts", field="invoice.contract")
        if message.contract
        else "",
        number=message.number,
        amount=message.amount.amount_minor
        if message.HasField("amount") and message.amount.amount_minor
        else None,
        currency=message.amount.currency_code,
        issued_date=optional_date(message, "issued_date", field="invoice.issued_date"),
        installment_names=list(message.installments),
        payment_names=list(message.payments),
        note=message.note,
    )


def invoice_to_pb(invoice: Invoice, installment_names: dict[str, str]) -> inv_pb.Invoice:
    message = inv_pb.Invoice(
        name=invoice.name,
        number=invoice.number,
        contract=invoice.contract_name,
        customer=invoice.customer,
        amount=money(invoice.currency, invoice.amount),
        issued_date=date_pb(invoice.issued_date),
        status=INVOICE_STATUS_TO_PB[invoice.status],
        installments=[installment_names[i] for i in invoice.installment_ids if i in installment_names],
        payments=[f"payments/{p}" for p in invoice.payment_ids],
        owner=invoice.owner,
        team=invoice.team,
        note=invoice.note,
        void_reason=invoice.void_reason,
        etag=etag_for(invoice.id, invoice.row_version),
    )
    message.create_time.CopyFrom(timestamp(invoice.create_time))
    message.update_time.CopyFrom(timestamp(invoice.update_time))
    return message


# --- receivables ------------------------------------------------------------------------------------------


def buckets_to_pb(currency: str, totals: AgingTotals) -> rec_pb.AgingBuckets:
    return rec_pb.AgingBuckets(
        current=money(currency, totals.current),
        days_1_30=money(currency, totals.days_1_30),
        days_31_60=money(currency, totals.days_31_60),
        days_61_90=money(currency, totals.days_61_90),
        days_over_90=money(currency, totals.days_over_90),
        total=money(currency, totals.total),
        overdue=money(currency, totals.overdue),
    )


def receivable_group_to_pb(group: ReceivableGroup) -> rec_pb.ReceivableGroup:
    return rec_pb.ReceivableGroup(
        key=group.key,
        currency_code=group.currency,
        buckets=buckets_to_pb(group.currency, group.totals),
        open_installments=group.open_installments,
        overdue_installments=group.overdue_installments,
    )
