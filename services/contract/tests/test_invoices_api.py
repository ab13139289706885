"""InvoiceService through a real gRPC channel, on SQLite and PostgreSQL with real NATS.

Numbers are assigned ("INV-000001") or given (a duplicate is ALREADY_EXISTS); invoices of a
contract never exceed its amount; links must belong to the contract; an ISSUED invoice becomes
PAID in the transaction of the payment that completes it, and a void of that payment reopens it.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import grpc
import pytest
from payment_support import (
    day,
    eur,
    events_about,
    expect_error,
    make_contract,
    payment_request,
    plan_request,
    today,
)

from crm.contract.v1 import common_pb2 as cpb
from crm.contract.v1 import invoice_service_pb2 as pb
from crm.contract.v1 import invoice_service_pb2_grpc as pb_grpc
from crm.contract.v1 import payment_service_pb2 as pay_pb
from crm.contract.v1 import payment_service_pb2_grpc as pay_grpc

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
def invoices(channel):
    return pb_grpc.InvoiceServiceStub(channel)


@pytest.fixture
def payments(channel):
    return pay_grpc.PaymentServiceStub(channel)


async def test_an_issued_invoice_is_paid_by_the_payment_that_completes_its_installment(
    invoices, payments, contract_service, as_user, nats_server
):
    finance, rep = as_user("finance", "fiona", ""), as_user("sales_rep", "bob", "east")
    contract = await make_contract(contract_service, amount=500_00)
    await payments.SetPaymentPlan(
        plan_request(
            contract, (today() + timedelta(days=10), 200_00), (today() + timedelta(days=40), 300_00)
        ),
        metadata=finance,
    )
    first = f"{contract}/installments/1"
    draft = await invoices.CreateInvoice(
        pb.CreateInvoiceRequest(invoice=pb.Invoice(contract=contract, installments=[first])), metadata=finance
    )
    assert draft.status == cpb.INVOICE_STATUS_DRAFT and draft.amount == eur(200_00)
    assert draft.number.startswith("INV-") and list(draft.installments) == [first]
    issued = await invoices.IssueInvoice(
        pb.IssueInvoiceRequest(name=draft.name, etag=draft.etag), metadata=finance
    )
    assert issued.status == cpb.INVOICE_STATUS_ISSUED and issued.issued_date == day(today())

    partial = await payments.RecordPayment(payment_request(contract, 150_00), metadata=finance)
    assert (await invoices.GetInvoice(pb.GetInvoiceRequest(name=draft.name), metadata=finance)).status == (
        cpb.INVOICE_STATUS_ISSUED
    )
    completing = await payments.RecordPayment(payment_request(contract, 50_00), metadata=finance)
    paid = await invoices.GetInvoice(
        pb.GetInvoiceRequest(name=draft.name), metadata=rep
    )  # reps read their own
    assert paid.status == cpb.INVOICE_STATUS_PAID
    published = await events_about(nats_server.url, draft.name, count=2)
    assert [e.type for e in published] == ["crm.contract.v1.InvoiceIssued", "crm.contract.v1.InvoicePaid"]

    await payments.VoidPayment(
        pay_pb.VoidPaymentRequest(name=completing.name, reason="bounced"), metadata=finance
    )
    reopened = await invoices.GetInvoice(pb.GetInvoiceRequest(name=draft.name), metadata=finance)
    assert reopened.status == cpb.INVOICE_STATUS_ISSUED
    assert partial.status == cpb.PAYMENT_STATUS_CONFIRMED

    # Invoices never add up to more than the contract; a void frees its share.
    over = await expect_error(
        invoices.CreateInvoice(
            pb.CreateInvoiceRequest(invoice=pb.Invoice(contract=contract, amount=eur(300_01))),
            metadata=finance,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert over.reason == "INVOICE_EXCEEDS_CONTRACT"
    voided = await invoices.VoidInvoice(
        pb.VoidInvoiceRequest(name=draft.name, reason="wrong"), metadata=finance
    )
    assert voided.status == cpb.INVOICE_STATUS_VOID and voided.void_reason == "wrong"
    whole = await invoices.CreateInvoice(
        pb.CreateInvoiceRequest(invoice=pb.Invoice(contract=contract, amount=eur(500_00))), metadata=finance
    )
    assert whole.amount == eur(500_00)


async def test_given_numbers_are_unique_links_stay_in_the_contract_and_scope_applies(
    invoices, payments, contract_service, as_user
):
    finance = as_user("finance", "fiona", "")
    contract = await make_contract(contract_service, amount=100_00)
    other = await make_contract(contract_service, amount=100_00, owner="carl", team="west")
    number = f"TAX-{uuid.uuid4().hex[:8]}"
    created = await invoices.CreateInvoice(
        pb.CreateInvoiceRequest(invoice=pb.Invoice(contract=contract, number=number, amount=eur(10_00))),
        metadata=finance,
    )
    assert created.number == number
    taken = await expect_error(
        invoices.CreateInvoice(
            pb.CreateInvoiceRequest(invoice=pb.Invoice(contract=other, number=number, amount=eur(10_00))),
            metadata=finance,
        ),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert taken.reason == "INVOICE_NUMBER_TAKEN"
    foreign_payment = await payments.RecordPayment(payment_request(other, 10_00), metadata=finance)
    bad_links = await expect_error(
        invoices.CreateInvoice(
            pb.CreateInvoiceRequest(
                invoice=pb.Invoice(
                    contract=contract,
                    amount=eur(10_00),
                    installments=[f"{other}/installments/1"],
                    payments=[foreign_payment.name],
                )
            ),
            metadata=finance,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert set(bad_links.field_violations) == {"invoice.installments[0]", "invoice.payments[0]"}

    # Covered by a linked payment: issued straight into PAID.
    paid_for = await payments.RecordPayment(payment_request(contract, 20_00), metadata=finance)
    by_payment = await invoices.CreateInvoice(
        pb.CreateInvoiceRequest(
            invoice=pb.Invoice(contract=contract, amount=eur(20_00), payments=[paid_for.name])
        ),
        metadata=finance,
    )
    issued = await invoices.IssueInvoice(pb.IssueInvoiceRequest(name=by_payment.name), metadata=finance)
    assert issued.status == cpb.INVOICE_STATUS_PAID

    west_rep = as_user("sales_rep", "dora", "west")
    await expect_error(
        invoices.GetInvoice(pb.GetInvoiceRequest(name=created.name), metadata=west_rep),
        grpc.StatusCode.NOT_FOUND,
    )
    mine = await invoices.ListInvoices(
        pb.ListInvoicesRequest(filter=f'contract = "{contract}"'),
        metadata=as_user("sales_manager", "mia", "east"),
    )
    assert {i.name for i in mine.invoices} == {created.name, by_payment.name}
    await expect_error(
        invoices.CreateInvoice(
            pb.CreateInvoiceRequest(invoice=pb.Invoice(contract=contract)), metadata=west_rep
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
