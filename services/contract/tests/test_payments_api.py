"""PaymentService payments through a real gRPC channel, on SQLite and PostgreSQL, with real NATS.

What a caller notices: partial payments applied oldest due first, the contract's balance
(received / outstanding / credit) on GetContract, explicit allocations checked, over-payment
refused (OVERPAYMENT) or kept as credit, voids reopening installments, request_id retries
counted once, events on the stream, and sales reps kept away from payment details.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import grpc
import pytest
from payment_support import (
    eur,
    events_about,
    expect_error,
    make_contract,
    payment_request,
    plan_request,
    today,
)

from crm.contract.v1 import approval_service_pb2 as ap_pb
from crm.contract.v1 import approval_service_pb2_grpc as ap_grpc
from crm.contract.v1 import common_pb2 as cpb
from crm.contract.v1 import contract_service_pb2 as cs_pb
from crm.contract.v1 import contract_service_pb2_grpc as cs_grpc
from crm.contract.v1 import events_pb2
from crm.contract.v1 import payment_service_pb2 as pb
from crm.contract.v1 import payment_service_pb2_grpc as pb_grpc
from crm_contract.domain.contracts import ContractStatus

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
def payments(channel):
    return pb_grpc.PaymentServiceStub(channel)


@pytest.fixture
def contracts(channel):
    return cs_grpc.ContractServiceStub(channel)


async def balance(contracts, name: str, metadata) -> tuple[int, int, int, int]:
    got = await contracts.GetContract(cs_pb.GetContractRequest(name=name), metadata=metadata)
    b = got.balance
    return b.received.amount_minor, b.outstanding.amount_minor, b.overdue.amount_minor, b.credit.amount_minor


async def test_partial_payments_fill_installments_oldest_first_and_show_on_the_contract(
    payments, contracts, contract_service, as_user, nats_server
):
    finance, rep = as_user("finance", "fiona", ""), as_user("sales_rep", "bob", "east")
    contract = await make_contract(contract_service, amount=1000_00)
    start = today()
    await payments.SetPaymentPlan(
        plan_request(contract, (start + timedelta(days=60), 600_00), (start + timedelta(days=30), 400_00)),
        metadata=finance,
    )
    first = await payments.RecordPayment(payment_request(contract, 300_00), metadata=finance)
    assert first.status == cpb.PAYMENT_STATUS_CONFIRMED and first.number.startswith("P-")
    assert [(a.installment, a.amount.amount_minor) for a in first.allocations] == [
        (f"{contract}/installments/1", 300_00)
    ]
    second = await payments.RecordPayment(payment_request(contract, 250_00), metadata=finance)
    assert [(a.installment, a.amount.amount_minor) for a in second.allocations] == [
        (f"{contract}/installments/1", 100_00),
        (f"{contract}/installments/2", 150_00),
    ]
    plan = await payments.GetPaymentPlan(
        pb.GetPaymentPlanRequest(name=f"{contract}/paymentPlan"), metadata=finance
    )
    assert [
        (i.status, i.paid_amount.amount_minor, i.outstanding_amount.amount_minor) for i in plan.installments
    ] == [
        (cpb.INSTALLMENT_STATUS_PAID, 400_00, 0),
        (cpb.INSTALLMENT_STATUS_PARTIALLY_PAID, 150_00, 450_00),
    ]
    assert plan.installments[0].paid_date == first.received_date
    # The rep sees the balance on the contract, never the payments themselves.
    assert await balance(contracts, contract, rep) == (550_00, 450_00, 0, 0)
    denied = await expect_error(
        payments.GetPayment(pb.GetPaymentRequest(name=first.name), metadata=rep),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert denied.code == grpc.StatusCode.PERMISSION_DENIED
    await expect_error(
        payments.ListPayments(pb.ListPaymentsRequest(), metadata=rep), grpc.StatusCode.PERMISSION_DENIED
    )
    await expect_error(
        payments.RecordPayment(payment_request(contract, 1_00), metadata=rep),
        grpc.StatusCode.PERMISSION_DENIED,
    )

    recorded = await events_about(nats_server.url, first.name, count=2)
    assert [e.type for e in recorded] == [
        "crm.contract.v1.PaymentRecorded",
        "crm.contract.v1.PaymentConfirmed",
    ]
    paid = await events_about(nats_server.url, f"{contract}/installments/1", count=1)
    event = events_pb2.InstallmentPaid()
    paid[0].payload.Unpack(event)
    assert event.installment.paid_amount.amount_minor == 400_00 and event.paid_date == second.received_date

    listed = await payments.ListPayments(
        pb.ListPaymentsRequest(filter=f'contract = "{contract}"', order_by="create_time"), metadata=finance
    )
    assert [p.name for p in listed.payments] == [first.name, second.name]


async def test_explicit_allocations_are_checked_and_overpayment_needs_consent(
    payments, contracts, contract_service, as_user
):
    finance = as_user("finance", "fiona", "")
    contract = await make_contract(contract_service, amount=500_00)
    start = today()
    await payments.SetPaymentPlan(
        plan_request(contract, (start + timedelta(days=10), 200_00), (start + timedelta(days=40), 300_00)),
        metadata=finance,
    )
    second = f"{contract}/installments/2"
    too_much = await expect_error(
        payments.RecordPayment(
            payment_request(contract, 350_00, allocations=[(second, 350_00)]), metadata=finance
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert list(too_much.field_violations) == ["payment.allocations[0].amount"]
    foreign = await expect_error(
        payments.RecordPayment(
            payment_request(contract, 10_00, allocations=[("contracts/x/installments/1", 10_00)]),
            metadata=finance,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert list(foreign.field_violations) == ["payment.allocations[0].installment"]

    explicit = await payments.RecordPayment(
        payment_request(contract, 300_00, allocations=[(second, 300_00)]), metadata=finance
    )
    assert [(a.installment, a.amount.amount_minor) for a in explicit.allocations] == [(second, 300_00)]

    over = await expect_error(
        payments.RecordPayment(payment_request(contract, 250_00), metadata=finance),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert over.reason == "OVERPAYMENT" and over.metadata["outstanding"] == "20000"
    kept = await payments.RecordPayment(
        payment_request(contract, 250_00, allow_overpayment=True), metadata=finance
    )
    assert kept.unapplied_amount == eur(50_00)
    assert await balance(contracts, contract, finance) == (500_00, 0, 0, 50_00)

    # A void takes back exactly what the payment applied: the installment reopens, credit goes.
    voided = await payments.VoidPayment(
        pb.VoidPaymentRequest(name=kept.name, reason="bounced", etag=kept.etag), metadata=finance
    )
    assert voided.status == cpb.PAYMENT_STATUS_VOIDED and voided.void_reason == "bounced"
    assert await balance(contracts, contract, finance) == (300_00, 200_00, 0, 0)
    again = await expect_error(
        payments.VoidPayment(pb.VoidPaymentRequest(name=kept.name, reason="twice"), metadata=finance),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert again.reason == "PAYMENT_STATUS_INVALID"


async def test_request_id_retry_counts_once_and_contract_status_and_dates_are_checked(
    payments, contracts, contract_service, as_user
):
    finance = as_user("finance", "fiona", "")
    contract = await make_contract(contract_service, amount=100_00)  # no plan: applied to the contract
    request_id = str(uuid.uuid4())
    first = await payments.RecordPayment(
        payment_request(contract, 40_00, request_id=request_id), metadata=finance
    )
    retry = await payments.RecordPayment(
        payment_request(contract, 40_00, request_id=request_id), metadata=finance
    )
    assert retry.name == first.name and [a.installment for a in first.allocations] == [""]
    assert await balance(contracts, contract, finance) == (40_00, 60_00, 0, 0)

    future = await expect_error(
        payments.RecordPayment(
            payment_request(contract, 1_00, received=today() + timedelta(days=1)), metadata=finance
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert list(future.field_violations) == ["payment.received_date"]
    draft = await make_contract(contract_service, amount=100_00, status=ContractStatus.DRAFT)
    refused = await expect_error(
        payments.RecordPayment(payment_request(draft, 1_00), metadata=finance),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert refused.reason == "CONTRACT_NOT_PAYABLE"
    expired = await make_contract(contract_service, amount=100_00, status=ContractStatus.EXPIRED)
    assert (await payments.RecordPayment(payment_request(expired, 1_00), metadata=finance)).status == (
        cpb.PAYMENT_STATUS_CONFIRMED
    )
    # Scope: a sales manager reads the payments of their team only.
    east, west = as_user("sales_manager", "mia", "east"), as_user("sales_manager", "will", "west")
    assert (
        await payments.GetPayment(pb.GetPaymentRequest(name=first.name), metadata=east)
    ).name == first.name
    await expect_error(
        payments.GetPayment(pb.GetPaymentRequest(name=first.name), metadata=west), grpc.StatusCode.NOT_FOUND
    )


async def test_payments_above_a_threshold_count_only_once_approved(
    payments, contracts, channel, contract_service, as_user, nats_server
):
    admin, fiona, fred = (
        as_user("admin", "ada", ""),
        as_user("finance", "fiona", ""),
        as_user("finance", "fred", ""),
    )
    await ap_grpc.ApprovalServiceStub(channel).CreateApprovalWorkflow(
        ap_pb.CreateApprovalWorkflowRequest(
            approval_workflow=ap_pb.ApprovalWorkflow(
                display_name="Large receipts",
                target=cpb.APPROVAL_TARGET_PAYMENT,
                condition=ap_pb.ApprovalCondition(min_amount=eur(1000_00)),
                steps=[
                    ap_pb.ApprovalStep(kind=cpb.APPROVER_KIND_ROLE, role="finance", display_name="Finance")
                ],
                active=True,
            )
        ),
        metadata=admin,
    )
    contract = await make_contract(contract_service, amount=5000_00)
    await payments.SetPaymentPlan(
        plan_request(contract, (today() + timedelta(days=30), 5000_00)), metadata=fiona
    )

    small = await payments.RecordPayment(payment_request(contract, 999_99), metadata=fiona)
    assert small.status == cpb.PAYMENT_STATUS_CONFIRMED and not small.approval
    large = await payments.RecordPayment(payment_request(contract, 2000_00), metadata=fiona)
    assert large.status == cpb.PAYMENT_STATUS_PENDING_APPROVAL and large.approval.startswith("approvals/")
    assert not large.allocations
    got = await contracts.GetContract(cs_pb.GetContractRequest(name=contract), metadata=fiona)
    assert (got.balance.received.amount_minor, got.balance.pending_approval.amount_minor) == (999_99, 2000_00)

    own = await expect_error(
        payments.ApprovePayment(pb.ApprovePaymentRequest(name=large.name), metadata=fiona),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert own.code == grpc.StatusCode.PERMISSION_DENIED
    approved = await payments.ApprovePayment(
        pb.ApprovePaymentRequest(name=large.name, comment="ok"), metadata=fred
    )
    assert approved.status == cpb.PAYMENT_STATUS_CONFIRMED
    assert [(a.installment, a.amount.amount_minor) for a in approved.allocations] == [
        (f"{contract}/installments/1", 2000_00)
    ]
    got = await contracts.GetContract(cs_pb.GetContractRequest(name=contract), metadata=fiona)
    assert (got.balance.received.amount_minor, got.balance.pending_approval.amount_minor) == (2999_99, 0)
    published = await events_about(nats_server.url, large.name, count=2)
    assert [e.type for e in published] == [
        "crm.contract.v1.PaymentRecorded",
        "crm.contract.v1.PaymentConfirmed",
    ]

    refused = await payments.RecordPayment(payment_request(contract, 1500_00), metadata=fiona)
    rejected = await payments.RejectPayment(
        pb.RejectPaymentRequest(name=refused.name, comment="not on the statement"), metadata=fred
    )
    assert rejected.status == cpb.PAYMENT_STATUS_REJECTED
    got = await contracts.GetContract(cs_pb.GetContractRequest(name=contract), metadata=fiona)
    assert (got.balance.received.amount_minor, got.balance.pending_approval.amount_minor) == (2999_99, 0)
    again = await expect_error(
        payments.ApprovePayment(pb.ApprovePaymentRequest(name=refused.name), metadata=fred),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert again.code == grpc.StatusCode.FAILED_PRECONDITION


async def test_an_approved_payment_that_no_longer_fits_is_refused(
    payments, contracts, channel, contract_service, as_user
):
    admin, fiona, fred = (
        as_user("admin", "ada", ""),
        as_user("finance", "fiona", ""),
        as_user("finance", "fred", ""),
    )
    await ap_grpc.ApprovalServiceStub(channel).CreateApprovalWorkflow(
        ap_pb.CreateApprovalWorkflowRequest(
            approval_workflow=ap_pb.ApprovalWorkflow(
                display_name="Every receipt",
                target=cpb.APPROVAL_TARGET_PAYMENT,
                condition=ap_pb.ApprovalCondition(min_amount=eur(1)),
                steps=[ap_pb.ApprovalStep(kind=cpb.APPROVER_KIND_ROLE, role="finance")],
                active=True,
            )
        ),
        metadata=admin,
    )
    contract = await make_contract(contract_service, amount=1000_00)
    first = await payments.RecordPayment(payment_request(contract, 600_00), metadata=fiona)
    second = await payments.RecordPayment(payment_request(contract, 600_00), metadata=fiona)
    await payments.ApprovePayment(pb.ApprovePaymentRequest(name=first.name), metadata=fred)
    late = await expect_error(
        payments.ApprovePayment(pb.ApprovePaymentRequest(name=second.name), metadata=fred),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert late.reason == "PAYMENT_NO_LONGER_FITS" and late.metadata["outstanding"] == "40000"
    got = await contracts.GetContract(cs_pb.GetContractRequest(name=contract), metadata=fiona)
    assert (got.balance.received.amount_minor, got.balance.pending_approval.amount_minor) == (600_00, 600_00)
    still = await payments.GetPayment(pb.GetPaymentRequest(name=second.name), metadata=fiona)
    assert still.status == cpb.PAYMENT_STATUS_PENDING_APPROVAL
