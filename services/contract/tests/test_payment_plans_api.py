"""SetPaymentPlan / GetPaymentPlan / ListInstallments through a real gRPC channel, on SQLite and
PostgreSQL with real NATS: the plan must add up to the contract amount, numbers follow due dates,
paid installments survive a new plan, and only finance/admins/managers see plans."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest
import sqlalchemy as sa
from payment_support import (
    app_of,
    day,
    eur,
    events_about,
    expect_error,
    make_contract,
    payment_request,
    plan_request,
    today,
)

from crm.common.v1.money_pb2 import Money
from crm.contract.v1 import common_pb2 as cpb
from crm.contract.v1 import events_pb2
from crm.contract.v1 import payment_service_pb2 as pb
from crm.contract.v1 import payment_service_pb2_grpc as pb_grpc
from crm_contract.adapters import installment_queries
from crm_contract.adapters.payment_tables import installments
from crm_contract.domain.contracts import ContractStatus
from crm_contract.service.payment_plans import DUE_TIMER, OVERDUE_TIMER
from crm_shared.timers import get_timer


def installment(due, amount: int, **fields) -> pb.Installment:
    return pb.Installment(due_date=day(due), amount=eur(amount), **fields)


async def installment_ids(session, contract: str) -> list[str]:
    rows = await session.execute(
        sa.select(installments.c.id).where(installments.c.contract_id == contract.removeprefix("contracts/"))
    )
    return list(rows.scalars())


pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
def payments(channel):
    return pb_grpc.PaymentServiceStub(channel)


async def test_a_plan_must_add_up_and_is_numbered_by_due_date(
    payments, contract_service, as_user, nats_server
):
    finance = as_user("finance", "fiona", "")
    contract = await make_contract(contract_service, amount=900_00)
    start = today()
    bad = await expect_error(
        payments.SetPaymentPlan(
            pb.SetPaymentPlanRequest(
                name=f"{contract}/paymentPlan",
                installments=[
                    installment(start, 500_00),
                    pb.Installment(due_date=day(start), amount=Money(currency_code="USD", amount_minor=-1)),
                ],
            ),
            metadata=finance,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert set(bad.field_violations) == {
        "installments[1].amount",
        "installments[1].amount.currency_code",
        "installments",
    }
    short = await expect_error(
        payments.SetPaymentPlan(plan_request(contract, (start, 100_00)), metadata=finance),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "not the contract amount 90000" in short.field_violations["installments"]

    plan = await payments.SetPaymentPlan(
        plan_request(
            contract,
            (start + timedelta(days=90), 300_00),
            (start + timedelta(days=30), 300_00),
            (start + timedelta(days=60), 300_00),
        ),
        metadata=finance,
    )
    assert [i.number for i in plan.installments] == [1, 2, 3]
    assert [i.due_date for i in plan.installments] == sorted(
        (i.due_date for i in plan.installments), key=lambda x: (x.year, x.month, x.day)
    )
    assert plan.total == eur(900_00) and plan.etag
    assert {i.status for i in plan.installments} == {cpb.INSTALLMENT_STATUS_PENDING}
    assert {i.remind_before_days for i in plan.installments} == {7}
    set_events = await events_about(nats_server.url, contract, count=1, type_suffix="PaymentPlanSet")
    event = events_pb2.PaymentPlanSet()
    set_events[-1].payload.Unpack(event)
    assert [i.number for i in event.installments] == [1, 2, 3]

    stale = await expect_error(
        payments.SetPaymentPlan(plan_request(contract, (start, 900_00), etag="stale"), metadata=finance),
        grpc.StatusCode.ABORTED,
    )
    assert stale.reason == "STALE_ETAG"


async def test_a_new_plan_keeps_what_was_paid_and_cancels_removed_timers(payments, contract_service, as_user):
    finance = as_user("finance", "fiona", "")
    contract = await make_contract(contract_service, amount=600_00)
    start = today()
    plan = await payments.SetPaymentPlan(
        plan_request(contract, (start + timedelta(days=10), 200_00), (start + timedelta(days=40), 400_00)),
        metadata=finance,
    )
    await payments.RecordPayment(payment_request(contract, 150_00), metadata=finance)
    first, second = plan.installments
    async with app_of(contract_service).db.read_session() as session:
        old_ids = set(await installment_ids(session, contract))

    dropped = await expect_error(
        payments.SetPaymentPlan(
            plan_request(contract, (start + timedelta(days=5), 600_00)), metadata=finance
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "has payments" in dropped.field_violations["installments"]
    below = pb.SetPaymentPlanRequest(
        name=f"{contract}/paymentPlan",
        installments=[
            pb.Installment(name=first.name, due_date=first.due_date, amount=eur(100_00)),
            pb.Installment(due_date=second.due_date, amount=eur(500_00)),
        ],
    )
    refused = await expect_error(
        payments.SetPaymentPlan(below, metadata=finance), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert "at least the 15000 already paid" in refused.field_violations["installments[0].amount"]

    # Keep the paid one (now due later, so it becomes number 2) and split the rest in two.
    replan = pb.SetPaymentPlanRequest(
        name=f"{contract}/paymentPlan",
        etag=plan.etag,
        installments=[
            installment(start + timedelta(days=20), 200_00, name=first.name),
            installment(start + timedelta(days=15), 100_00),
            pb.Installment(due_date=second.due_date, amount=eur(300_00)),
        ],
    )
    new = await payments.SetPaymentPlan(replan, metadata=finance)
    assert [(i.number, i.paid_amount.amount_minor) for i in new.installments] == [(1, 0), (2, 150_00), (3, 0)]
    assert new.installments[1].status == cpb.INSTALLMENT_STATUS_PARTIALLY_PAID

    # The timers of the removed installment are gone; every installment left has its own.
    async with app_of(contract_service).db.read_session() as session:
        now_ids = set(await installment_ids(session, contract))
        assert len(now_ids) == 3 and old_ids - now_ids
        tables = app_of(contract_service).uow_factory.tables
        for removed in old_ids - now_ids:
            assert await get_timer(session, tables, DUE_TIMER, removed) is None
            assert await get_timer(session, tables, OVERDUE_TIMER, removed) is None
        for kept in now_ids:
            assert await get_timer(session, tables, OVERDUE_TIMER, kept) is not None


async def test_plans_are_refused_on_ended_contracts_and_hidden_from_reps(payments, contract_service, as_user):
    finance, rep = as_user("finance", "fiona", ""), as_user("sales_rep", "bob", "east")
    west = as_user("sales_manager", "will", "west")
    ended = await make_contract(contract_service, amount=100_00, status=ContractStatus.TERMINATED)
    refused = await expect_error(
        payments.SetPaymentPlan(plan_request(ended, (today(), 100_00)), metadata=finance),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert refused.reason == "CONTRACT_STATUS_INVALID"
    contract = await make_contract(contract_service, amount=100_00)
    await payments.SetPaymentPlan(
        plan_request(contract, (today() + timedelta(days=3), 100_00)), metadata=finance
    )
    await expect_error(
        payments.GetPaymentPlan(pb.GetPaymentPlanRequest(name=f"{contract}/paymentPlan"), metadata=rep),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    await expect_error(
        payments.GetPaymentPlan(pb.GetPaymentPlanRequest(name=f"{contract}/paymentPlan"), metadata=west),
        grpc.StatusCode.NOT_FOUND,
    )
    east = as_user("sales_manager", "mia", "east")
    listed = await payments.ListInstallments(pb.ListInstallmentsRequest(parent=contract), metadata=east)
    assert [i.name for i in listed.installments] == [f"{contract}/installments/1"]
    assert listed.installments[0].owner == "bob" and listed.installments[0].contract == contract


async def test_money_received_before_the_plan_moves_onto_it(payments, contract_service, as_user):
    finance = as_user("finance", "fiona", "")
    contract = await make_contract(contract_service, amount=1000_00)
    down = await payments.RecordPayment(payment_request(contract, 300_00), metadata=finance)
    assert [a.installment for a in down.allocations] == [""]
    plan = await payments.SetPaymentPlan(
        plan_request(
            contract, (today() + timedelta(days=30), 500_00), (today() + timedelta(days=60), 500_00)
        ),
        metadata=finance,
    )
    assert [i.paid_amount.amount_minor for i in plan.installments] == [300_00, 0]
    moved = await payments.GetPayment(pb.GetPaymentRequest(name=down.name), metadata=finance)
    assert [(a.installment, a.amount.amount_minor) for a in moved.allocations] == [
        (f"{contract}/installments/1", 300_00)
    ]
    await payments.VoidPayment(pb.VoidPaymentRequest(name=down.name, reason="reversed"), metadata=finance)
    reopened = await payments.GetPaymentPlan(
        pb.GetPaymentPlanRequest(name=f"{contract}/paymentPlan"), metadata=finance
    )
    assert [i.paid_amount.amount_minor for i in reopened.installments] == [0, 0]


async def test_scope_copies_follow_the_contract_owner(payments, contract_service, as_user):
    """UpdateContract's hook: installments move with the contract to its new owner's team."""
    finance = as_user("finance", "fiona", "")
    contract = await make_contract(contract_service, amount=100_00)
    await payments.SetPaymentPlan(
        plan_request(contract, (today() + timedelta(days=9), 100_00)), metadata=finance
    )
    app = app_of(contract_service)
    async with app.uow_factory() as uow:
        await installment_queries.copy_contract_scope(
            uow.session,
            contract.removeprefix("contracts/"),
            customer="customers/new",
            owner="wes",
            team="west",
        )
        await uow.commit()
    west = as_user("sales_manager", "will", "west")
    listed = await payments.ListInstallments(pb.ListInstallmentsRequest(parent="contracts/-"), metadata=west)
    assert [(i.contract, i.owner, i.customer) for i in listed.installments] == [
        (contract, "wes", "customers/new")
    ]
