"""Random sequences of RecordPayment / VoidPayment / SetPaymentPlan through the real service,
on SQLite and PostgreSQL: whatever the sequence, the stored state stays legal.

After every call: no amount is negative, received + outstanding == the contract amount, the
installments' paid amounts add up to received, credit is exactly the unapplied part of the
confirmed payments, and a refused call changed nothing.
"""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from payment_support import app_of, day, eur, make_contract, payment_request, today

from crm.contract.v1 import payment_service_pb2 as pb
from crm.contract.v1 import payment_service_pb2_grpc as pb_grpc
from crm_contract.adapters.contract_tables import contracts
from crm_contract.adapters.payment_tables import installments, payments

pytestmark = pytest.mark.asyncio(loop_scope="session")

AMOUNT = 1000_00

steps = st.lists(
    st.one_of(
        st.tuples(st.just("pay"), st.integers(1, 700_00), st.booleans(), st.integers(0, 3)),
        st.tuples(st.just("void"), st.integers(0, 10)),
        st.tuples(st.just("replan"), st.integers(1, 3)),
    ),
    min_size=1,
    max_size=12,
)


async def stored_state(service, contract: str):
    contract_id = contract.removeprefix("contracts/")
    async with app_of(service).db.read_session() as session:
        row = (
            (await session.execute(sa.select(contracts).where(contracts.c.id == contract_id)))
            .mappings()
            .one()
        )
        plan = (
            (await session.execute(sa.select(installments).where(installments.c.contract_id == contract_id)))
            .mappings()
            .all()
        )
        paid = (
            await session.execute(
                sa.select(payments.c.amount, payments.c.unapplied).where(
                    payments.c.contract_id == contract_id, payments.c.status == "confirmed"
                )
            )
        ).all()
    return dict(row), [dict(i) for i in plan], paid


def assert_legal(row, plan, confirmed) -> None:
    received, credit, overdue = row["received"], row["credit"], row["overdue"]
    assert min(received, credit, overdue, row["pending_approval"], row["amount"] - received) >= 0
    assert received + (row["amount"] - received) == row["amount"] and received <= row["amount"]
    assert all(0 <= i["paid_amount"] <= i["amount"] for i in plan)
    if plan:
        assert sum(i["paid_amount"] for i in plan) == received
        assert sum(i["amount"] for i in plan) == row["amount"]
    assert credit == sum(unapplied for _, unapplied in confirmed)
    assert received == sum(amount - unapplied for amount, unapplied in confirmed)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=steps)
async def test_no_sequence_of_calls_reaches_an_illegal_state(channel, contract_service, as_user, sequence):
    finance = as_user("finance", "fiona", "")
    stub = pb_grpc.PaymentServiceStub(channel)
    contract = await make_contract(contract_service, amount=AMOUNT)
    start = today()
    recorded: list[str] = []
    for step in sequence:
        before = await stored_state(contract_service, contract)
        try:
            if step[0] == "pay":
                _, amount, allow, target = step
                allocations = []
                if target and before[1]:
                    number = min(target, len(before[1]))
                    allocations = [(f"{contract}/installments/{number}", min(amount, 100_00))]
                payment = await stub.RecordPayment(
                    payment_request(contract, amount, allocations=allocations, allow_overpayment=allow),
                    metadata=finance,
                )
                recorded.append(payment.name)
            elif step[0] == "void" and recorded:
                await stub.VoidPayment(
                    pb.VoidPaymentRequest(name=recorded[step[1] % len(recorded)], reason="test"),
                    metadata=finance,
                )
            elif step[0] == "replan":
                # Keep every installment by name (paid ones must stay), move the rest into new ones.
                current = (
                    await stub.GetPaymentPlan(
                        pb.GetPaymentPlanRequest(name=f"{contract}/paymentPlan"), metadata=finance
                    )
                ).installments
                kept = [
                    pb.Installment(name=i.name, due_date=i.due_date, amount=i.paid_amount)
                    for i in current
                    if i.paid_amount.amount_minor
                ]
                rest = AMOUNT - sum(i.amount.amount_minor for i in kept)
                parts = [rest // step[1]] * step[1]
                parts[-1] += rest - sum(parts)
                fresh = [
                    pb.Installment(due_date=day(start + timedelta(days=10 * (n + 1))), amount=eur(part))
                    for n, part in enumerate(parts)
                    if part
                ]
                plan = await stub.SetPaymentPlan(
                    pb.SetPaymentPlanRequest(name=f"{contract}/paymentPlan", installments=kept + fresh),
                    metadata=finance,
                )
                assert plan.total == eur(AMOUNT)
        except grpc.aio.AioRpcError as refused:
            assert refused.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION)
            after = await stored_state(contract_service, contract)
            assert (after[0]["received"], after[0]["credit"]) == (before[0]["received"], before[0]["credit"])
        row, plan, confirmed = await stored_state(contract_service, contract)
        assert_legal(row, plan, confirmed)
