"""Concurrent RecordPayment calls on one installment through the real gRPC service, on SQLite
and PostgreSQL: the contract row lock serializes them, so each is counted exactly once and the
installment, the contract's balance and the payments always agree."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
import pytest
from payment_support import make_contract, payment_request, plan_request, today

from crm.contract.v1 import common_pb2 as cpb
from crm.contract.v1 import contract_service_pb2 as cs_pb
from crm.contract.v1 import contract_service_pb2_grpc as cs_grpc
from crm.contract.v1 import payment_service_pb2 as pb
from crm.contract.v1 import payment_service_pb2_grpc as pb_grpc
from crm_shared.grpc.status import error_details

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.mark.parametrize("racers", [2, 8])
async def test_concurrent_payments_on_one_installment_are_each_counted_once(
    channel, contract_service, as_user, racers
):
    finance = as_user("finance", "fiona", "")
    payments, contracts = pb_grpc.PaymentServiceStub(channel), cs_grpc.ContractServiceStub(channel)
    contract = await make_contract(contract_service, amount=1000_00)
    await payments.SetPaymentPlan(
        plan_request(
            contract, (today() + timedelta(days=30), 700_00), (today() + timedelta(days=60), 300_00)
        ),
        metadata=finance,
    )
    first = f"{contract}/installments/1"
    recorded = await asyncio.gather(
        *[
            payments.RecordPayment(
                payment_request(contract, 50_00, allocations=[(first, 50_00)]), metadata=finance
            )
            for _ in range(racers)
        ]
    )
    assert len({p.name for p in recorded}) == racers and len({p.number for p in recorded}) == racers
    plan = await payments.GetPaymentPlan(
        pb.GetPaymentPlanRequest(name=f"{contract}/paymentPlan"), metadata=finance
    )
    assert plan.installments[0].paid_amount.amount_minor == racers * 50_00
    got = await contracts.GetContract(cs_pb.GetContractRequest(name=contract), metadata=finance)
    assert got.balance.received.amount_minor == racers * 50_00
    assert got.balance.outstanding.amount_minor == 1000_00 - racers * 50_00


async def test_racing_payments_never_overfill_an_installment(channel, contract_service, as_user):
    """Eight payments of 40 race for an installment with 100 open: two fit, the rest are refused whole."""
    finance = as_user("finance", "fiona", "")
    payments, contracts = pb_grpc.PaymentServiceStub(channel), cs_grpc.ContractServiceStub(channel)
    contract = await make_contract(contract_service, amount=100_00)
    await payments.SetPaymentPlan(
        plan_request(contract, (today() + timedelta(days=5), 100_00)), metadata=finance
    )
    only = f"{contract}/installments/1"
    results = await asyncio.gather(
        *[
            payments.RecordPayment(
                payment_request(contract, 40_00, allocations=[(only, 40_00)]), metadata=finance
            )
            for _ in range(8)
        ],
        return_exceptions=True,
    )
    confirmed = [r for r in results if isinstance(r, pb.Payment)]
    refused = [error_details(r) for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(confirmed) == 2 and len(refused) == 6
    assert {r.code for r in refused} == {grpc.StatusCode.INVALID_ARGUMENT}
    got = await contracts.GetContract(cs_pb.GetContractRequest(name=contract), metadata=finance)
    assert (got.balance.received.amount_minor, got.balance.outstanding.amount_minor) == (80_00, 20_00)
    plan = await payments.GetPaymentPlan(
        pb.GetPaymentPlanRequest(name=f"{contract}/paymentPlan"), metadata=finance
    )
    assert plan.installments[0].status == cpb.INSTALLMENT_STATUS_PARTIALLY_PAID
