"""Shared by the payment, invoice and receivable tests: contracts put straight into a status,
plans, payments and the events published about a resource."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import grpc
import pytest
from google.type import date_pb2

from crm.common.v1.money_pb2 import Money
from crm.contract.v1 import payment_service_pb2 as pb
from crm_contract.adapters.contract_repository import ContractRepository
from crm_contract.api.payments import PaymentServicer
from crm_contract.domain.contracts import Contract, ContractStatus
from crm_shared.grpc.status import error_details
from crm_shared.testing.events import stream_envelopes, wait_for_envelopes
from crm_shared.testing.fixtures_nats import connect_nats

STREAM = "CRM_CONTRACT"


def eur(amount: int) -> Money:
    return Money(currency_code="EUR", amount_minor=amount)


def day(value: date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


def today() -> date:
    return datetime.now(UTC).date()


def app_of(service):
    return next(s for _, s in service.parts.servicers if isinstance(s, PaymentServicer))._app


async def make_contract(
    service,
    *,
    amount: int,
    currency: str = "EUR",
    owner: str = "bob",
    team: str = "east",
    status: ContractStatus = ContractStatus.ACTIVE,
    customer: str | None = None,
) -> str:
    """A contract stored directly in `status` (the approval/sign RPCs are other areas' to test)."""
    app = app_of(service)
    async with app.uow_factory() as uow:
        repo = ContractRepository(uow.session)
        contract = Contract(
            id=str(uuid.uuid4()),
            number=await repo.next_number(),
            customer=customer or f"customers/{uuid.uuid4()}",
            currency=currency,
            owner=owner,
            team=team,
            create_time=uow.now,
            update_time=uow.now,
            title="Maintenance",
            amount=amount,
            status=status,
        )
        await repo.add(contract)
        await uow.commit()
    return contract.name


async def set_status(service, name: str, status: ContractStatus) -> None:
    app = app_of(service)
    async with app.uow_factory() as uow:
        repo = ContractRepository(uow.session)
        current = await repo.get(name.removeprefix("contracts/"))
        current.status = status
        await repo.save(current, current.row_version)
        await uow.commit()


def plan_request(contract: str, *items: tuple[date, int], **fields) -> pb.SetPaymentPlanRequest:
    return pb.SetPaymentPlanRequest(
        name=f"{contract}/paymentPlan",
        installments=[pb.Installment(due_date=day(due), amount=eur(amount)) for due, amount in items],
        **fields,
    )


def payment_request(contract: str, amount: int, *, received: date | None = None, allocations=(), **fields):
    return pb.RecordPaymentRequest(
        payment=pb.Payment(
            contract=contract,
            amount=eur(amount),
            received_date=day(received or today()),
            method=1,
            reference="bank-ref",
            allocations=[pb.PaymentAllocation(installment=i, amount=eur(a)) for i, a in allocations],
        ),
        **fields,
    )


async def expect_error(call, code: grpc.StatusCode):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    details = error_details(caught.value)
    assert details.code == code, f"{details.code} {details.message}"
    return details


async def events_about(nats_url: str, resource: str, *, count: int, type_suffix: str = "") -> list:
    """The envelopes about `resource` (at least `count` of them, waited for), oldest first."""
    nc = await connect_nats(nats_url)
    try:
        js = nc.jetstream()
        if count:
            await wait_for_envelopes(js, STREAM, resource=resource, count=count)
        found = [env for _, env in await stream_envelopes(js, STREAM) if env.subject == resource]
        return [env for env in found if env.type.endswith(type_suffix)]
    finally:
        await nc.close()
