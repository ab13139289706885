"""A won opportunity (crm.sales.opportunity.won, published to the real NATS stream CRM_SALES)
becomes exactly one DRAFT contract for its owner, on SQLite and PostgreSQL: redeliveries and a
second win of the same opportunity create nothing (also when two consumers race on it),
ContractCreated is published once, and a payload that can never be a contract is dead-lettered."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from crm.common.v1 import money_pb2
from crm.contract.v1 import common_pb2
from crm.contract.v1 import contract_service_pb2 as rpc
from crm.contract.v1 import contract_service_pb2_grpc as rpc_grpc
from crm.contract.v1 import events_pb2 as contract_events_pb
from crm.sales.v1 import events_pb2 as sales_events_pb
from crm_contract.consumers import SALES_CONSUMER, SUBJECT_OPPORTUNITY_WON, SalesEventConsumer
from crm_contract.service import opportunity_events
from crm_shared.events.consumer import list_dead_letters
from crm_shared.events.envelope import build_envelope, serialize_envelope, unpack_payload
from crm_shared.events.errors import TransientError
from crm_shared.ids import new_id
from crm_shared.testing.events import wait_for_envelopes

pytestmark = pytest.mark.asyncio(loop_scope="session")

WAIT_SECONDS = 20.0
CONTRACT_STREAM = "CRM_CONTRACT"


def the_app(contract_service):
    [worker] = [w for w in contract_service.parts.workers if isinstance(w, SalesEventConsumer)]
    return worker.app


def won(opportunity: str, *, customer: str | None = None, amount: int = 12_000_000, owner: str = "bob"):
    return sales_events_pb.OpportunityWon(
        opportunity=sales_events_pb.OpportunitySnapshot(
            name=opportunity,
            customer=customer or f"customers/{uuid.uuid4()}",
            title="Forklifts for Ningbo",
            amount=money_pb2.Money(currency_code="CNY", amount_minor=amount),
            owner=owner,
            team="east",
        )
    )


async def publish(js, payload, *, event_id: str | None = None, msg_id: str | None = None) -> str:
    """Publish like the sales outbox relay; a new msg_id for the same event_id is a redelivery."""
    event_id = event_id or new_id()
    envelope = build_envelope(
        event_id=event_id,
        payload=payload,
        source="sales",
        subject=payload.opportunity.name,
        occurred_at=datetime.now(UTC),
        actor_subject="bob",
    )
    await js.publish(
        SUBJECT_OPPORTUNITY_WON, serialize_envelope(envelope), headers={"Nats-Msg-Id": msg_id or event_id}
    )
    return event_id


async def eventually(check, seconds: float = WAIT_SECONDS):
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.1)


def opportunity_name() -> str:
    return f"opportunities/{uuid.uuid4()}"


async def contracts_of(stub, metadata, opportunity: str) -> list:
    reply = await stub.ListContracts(
        rpc.ListContractsRequest(filter=f'opportunity = "{opportunity}"'), metadata=metadata
    )
    return list(reply.contracts)


async def test_a_won_opportunity_becomes_one_draft_contract_for_its_owner(contract_service, channel, as_user):
    js = contract_service.infrastructure.js
    stub = rpc_grpc.ContractServiceStub(channel)
    admin = as_user("admin", "alice", "east")
    opportunity, customer = opportunity_name(), f"customers/{uuid.uuid4()}"

    first = await publish(js, won(opportunity, customer=customer))

    async def drafted():
        return await contracts_of(stub, admin, opportunity)

    [contract] = await eventually(drafted) or [None]
    assert contract is not None, "no draft contract for the won opportunity"
    assert contract.status == common_pb2.CONTRACT_STATUS_DRAFT
    assert (contract.customer, contract.opportunity, contract.title) == (
        customer,
        opportunity,
        "Forklifts for Ningbo",
    )
    assert (contract.amount.currency_code, contract.amount.amount_minor) == ("CNY", 12_000_000)
    assert (contract.owner, contract.team) == ("bob", "east")
    assert contract.number.startswith("C-")
    # The owner (a sales rep) finds it among their own contracts.
    [own] = await contracts_of(stub, as_user("sales_rep", "bob", "east"), opportunity)
    assert own.name == contract.name

    # The relay publishes the same event again (crash before its ack), and the opportunity is
    # reopened and won a second time (a new event id).
    await publish(js, won(opportunity, customer=customer), event_id=first, msg_id=new_id())
    await publish(js, won(opportunity, customer=customer, amount=99_000_000))
    # Barrier: the consumer applies in order, so once this later win shows, the two above are settled.
    # A zero amount is a legitimate draft (the rep fills it in later).
    barrier = opportunity_name()
    await publish(js, won(barrier, amount=0))

    async def barrier_drafted():
        return await contracts_of(stub, admin, barrier)

    [zero] = await eventually(barrier_drafted) or [None]
    assert zero is not None and zero.amount.amount_minor == 0
    assert [c.name for c in await contracts_of(stub, admin, opportunity)] == [contract.name]
    assert (await stub.GetContract(rpc.GetContractRequest(name=contract.name), metadata=admin)).amount == (
        contract.amount
    )

    # ContractCreated: once for the opportunity, with its origin (the relay publishes in commit
    # order, so the barrier's event arriving means any duplicate would be there too).
    await wait_for_envelopes(js, CONTRACT_STREAM, resource=zero.name, count=1, within=WAIT_SECONDS)
    created = await wait_for_envelopes(
        js, CONTRACT_STREAM, subject="crm.contract.contract.created", resource=contract.name, count=1
    )
    assert len(created) == 1
    event = unpack_payload(created[0], contract_events_pb.ContractCreated)
    assert event.origin == "opportunity_won"
    assert (event.contract.name, event.contract.opportunity, event.contract.owner) == (
        contract.name,
        opportunity,
        "bob",
    )
    assert event.contract.status == common_pb2.CONTRACT_STATUS_DRAFT


async def test_a_won_event_that_can_never_be_a_contract_is_dead_lettered(contract_service, channel, as_user):
    app, js = the_app(contract_service), contract_service.infrastructure.js
    stub = rpc_grpc.ContractServiceStub(channel)
    admin = as_user("admin", "alice", "east")
    not_a_name = await publish(js, won("opportunities/not-a-uuid"))
    no_customer = opportunity_name()
    missing_customer = won(no_customer)
    missing_customer.opportunity.customer = ""
    no_customer_event = await publish(js, missing_customer)
    negative = opportunity_name()
    negative_event = await publish(js, won(negative, amount=-1))

    async def parked():
        letters = await list_dead_letters(app.db, app.uow_factory.tables, SALES_CONSUMER)
        found = {letter.event_id: letter for letter in letters}
        return found if {not_a_name, no_customer_event, negative_event} <= found.keys() else None

    letters = await eventually(parked)
    assert letters, "the invalid events were not dead-lettered"
    assert "not opportunities/{uuid}" in letters[not_a_name].error
    assert letters[not_a_name].deliveries == 1  # poison: not retried
    assert "customer" in letters[no_customer_event].error
    assert "amount.amount_minor must not be negative" in letters[negative_event].error
    for opportunity in (no_customer, negative):
        assert await contracts_of(stub, admin, opportunity) == []


async def test_two_consumers_racing_on_one_opportunity_leave_one_contract(contract_service, channel, as_user):
    """Two replicas apply two different win events of one opportunity at the same time. On
    PostgreSQL the second insert waits on the UNIQUE won_opportunity index, then fails as a
    transient error (retried later, when its lookup finds the contract); SQLite has one writer,
    so the second simply finds the first's contract."""
    app = the_app(contract_service)
    stub = rpc_grpc.ContractServiceStub(channel)
    opportunity = opportunity_name()
    payload = won(opportunity)
    if app.db.dialect != "postgresql":
        for _ in range(2):
            async with app.uow_factory() as uow:
                await opportunity_events.opportunity_won(uow, payload)
                await uow.commit()
    else:
        second_started = asyncio.Event()

        async def second_replica():
            async with app.uow_factory() as uow:
                second_started.set()
                await opportunity_events.opportunity_won(uow, payload)
                await uow.commit()

        async with app.uow_factory() as first:
            await opportunity_events.opportunity_won(first, payload)
            racer = asyncio.create_task(second_replica())
            await second_started.wait()
            await asyncio.sleep(0.3)  # let its lookup miss the uncommitted row and its insert block
            await first.commit()
        with pytest.raises(TransientError):
            await racer
    [contract] = await contracts_of(stub, as_user("admin", "alice", "east"), opportunity)
    assert contract.status == common_pb2.CONTRACT_STATUS_DRAFT
