"""Renewal reminders and expiry: durable timers fired by a controllable clock.

The service runs with a ManualClock and its own background timer worker stopped;
the test drives a TimerScheduler's run_due() after moving the clock, so "fires at
its time" means: not a second before, exactly once at it.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.type import date_pb2

from crm.common.v1.money_pb2 import Money
from crm.contract.v1 import common_pb2 as cpb
from crm.contract.v1 import contract_service_pb2 as pb
from crm.contract.v1 import contract_service_pb2_grpc as pb_grpc
from crm.contract.v1 import events_pb2
from crm_contract.adapters.contract_repository import ContractRepository
from crm_contract.api.contracts import ContractServicer
from crm_contract.bootstrap import build
from crm_contract.config import ContractSettings
from crm_contract.domain import contracts as rules
from crm_contract.service.contracts import EXPIRY_TIMER, RENEWAL_DUE_TIMER
from crm_contract.timers import timer_handlers
from crm_shared import timers
from crm_shared.clock import ManualClock
from crm_shared.runtime import start_service
from crm_shared.testing.events import stream_envelopes
from crm_shared.testing.fixtures_nats import connect_nats
from crm_shared.timers import TimerScheduler

pytestmark = pytest.mark.asyncio(loop_scope="session")

STREAM = "CRM_CONTRACT"
START = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


class Harness:
    def __init__(self, running, clock: ManualClock, channel, meta) -> None:
        self.running, self.clock, self.meta = running, clock, meta
        self.contracts = pb_grpc.ContractServiceStub(channel)
        self.app = next(s for _, s in running.parts.servicers if isinstance(s, ContractServicer))._app
        self.scheduler = TimerScheduler(
            self.app.db,
            self.app.uow_factory.tables,
            self.app.uow_factory,
            clock=clock,
            handlers=timer_handlers(self.app),
        )

    async def signed_contract(self, *, end: date_pb2.Date, notice_days: int = 30) -> pb.Contract:
        created = await self.contracts.CreateContract(
            pb.CreateContractRequest(
                contract=pb.Contract(
                    customer=f"customers/{uuid.uuid4()}",
                    amount=Money(currency_code="EUR", amount_minor=50_000_00),
                    start_date=date_pb2.Date(year=2026, month=1, day=1),
                    end_date=end,
                    renewal_notice_days=notice_days,
                )
            ),
            metadata=self.meta,
        )
        async with self.app.uow_factory() as uow:
            repo = ContractRepository(uow.session)
            current = await repo.get(created.name.removeprefix("contracts/"))
            approved = rules.approve(rules.submit(current, uow.now, approval_id=str(uuid.uuid4())), uow.now)
            await repo.save(approved, current.row_version)
            await uow.commit()
        return await self.contracts.SignContract(
            pb.SignContractRequest(name=created.name), metadata=self.meta
        )

    async def fire_at(self, moment: datetime) -> int:
        self.clock.set(moment)
        return await self.scheduler.run_due()

    async def status(self, name: str) -> int:
        return (await self.contracts.GetContract(pb.GetContractRequest(name=name), metadata=self.meta)).status

    async def pending(self, kind: str, name: str):
        async with self.app.db.read_session() as session:
            return await timers.get_timer(
                session, self.app.uow_factory.tables, kind, name.removeprefix("contracts/")
            )


@pytest.fixture
async def harness(database_url, nats_server, jwt_keys, token_factory):
    clock = ManualClock(START)
    settings = ContractSettings(
        grpc_port=0,
        database_url=database_url,
        nats_url=nats_server.url,
        jwt_jwks_file=jwt_keys.jwks_path,
        jwt_issuer=jwt_keys.issuer,
        jwt_audience=jwt_keys.audience,
        page_token_secret="test-page-secret",
        shutdown_grace_seconds=2,
    )
    running = await start_service(settings, build, clock=clock)
    try:
        # The test fires timers itself, at the moments it chooses.
        for worker in running.parts.workers:
            if isinstance(worker, TimerScheduler):
                await worker.stop()
        meta = (("authorization", f"Bearer {token_factory(subject='bob', roles=('admin',), team='east')}"),)
        async with grpc.aio.insecure_channel(running.address) as channel:
            yield Harness(running, clock, channel, meta)
    finally:
        await running.stop(1)


async def events_about(nats_server, name: str) -> list:
    nc = await connect_nats(nats_server.url)
    try:
        return [env for _, env in await stream_envelopes(nc.jetstream(), STREAM) if env.subject == name]
    finally:
        await nc.close()


async def test_renewal_due_then_expiry_fire_once_at_their_moments(harness, nats_server):
    contract = await harness.signed_contract(end=date_pb2.Date(year=2026, month=3, day=31), notice_days=30)
    assert (await harness.pending(RENEWAL_DUE_TIMER, contract.name)).due_at == datetime(
        2026, 3, 1, tzinfo=UTC
    )
    assert (await harness.pending(EXPIRY_TIMER, contract.name)).due_at == datetime(2026, 4, 1, tzinfo=UTC)

    assert await harness.fire_at(datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC)) == 0
    assert await harness.fire_at(datetime(2026, 3, 1, tzinfo=UTC)) == 1
    assert await harness.fire_at(datetime(2026, 3, 1, 0, 0, 1, tzinfo=UTC)) == 0  # once, not again
    assert await harness.status(contract.name) == cpb.CONTRACT_STATUS_ACTIVE

    assert (
        await harness.fire_at(datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC)) == 0
    )  # the last day is in force
    assert await harness.status(contract.name) == cpb.CONTRACT_STATUS_ACTIVE
    assert await harness.fire_at(datetime(2026, 4, 1, tzinfo=UTC)) == 1
    assert await harness.status(contract.name) == cpb.CONTRACT_STATUS_EXPIRED
    assert await harness.fire_at(datetime(2026, 5, 1, tzinfo=UTC)) == 0

    events = await _wait_for_types(nats_server, contract.name, 4)
    assert [e.type for e in events] == [
        "crm.contract.v1.ContractCreated",
        "crm.contract.v1.ContractSigned",
        "crm.contract.v1.ContractRenewalDue",
        "crm.contract.v1.ContractExpired",
    ]
    due = events_pb2.ContractRenewalDue()
    events[2].payload.Unpack(due)
    assert (due.days_left, due.contract.name) == (30, contract.name)
    expired = events_pb2.ContractExpired()
    events[3].payload.Unpack(expired)
    assert expired.contract.status == cpb.CONTRACT_STATUS_EXPIRED
    assert expired.expire_time.ToDatetime(tzinfo=UTC) == datetime(2026, 4, 1, tzinfo=UTC)


async def test_signing_inside_the_notice_window_reminds_at_once(harness, nats_server):
    # Ends 20 days after "now": already inside a 30-day notice window.
    contract = await harness.signed_contract(end=date_pb2.Date(year=2026, month=1, day=30), notice_days=30)
    assert (await harness.pending(RENEWAL_DUE_TIMER, contract.name)).due_at == START
    assert await harness.fire_at(START) == 1
    events = await _wait_for_types(nats_server, contract.name, 3)
    due = events_pb2.ContractRenewalDue()
    events[2].payload.Unpack(due)
    assert (events[2].type, due.days_left) == ("crm.contract.v1.ContractRenewalDue", 20)


async def test_terminate_cancels_both_timers_and_a_stale_timer_does_nothing(harness, nats_server):
    contract = await harness.signed_contract(end=date_pb2.Date(year=2026, month=3, day=31))
    await harness.contracts.TerminateContract(
        pb.TerminateContractRequest(name=contract.name, reason="customer insolvent"), metadata=harness.meta
    )
    assert await harness.pending(RENEWAL_DUE_TIMER, contract.name) is None
    assert await harness.pending(EXPIRY_TIMER, contract.name) is None
    assert await harness.fire_at(datetime(2026, 4, 2, tzinfo=UTC)) == 0

    # A timer that somehow outlived the contract's ACTIVE days (e.g. restored from a backup).
    async with harness.app.uow_factory() as uow:
        await timers.schedule(
            uow, EXPIRY_TIMER, contract.name.removeprefix("contracts/"), harness.clock.now()
        )
        await timers.schedule(
            uow, RENEWAL_DUE_TIMER, contract.name.removeprefix("contracts/"), harness.clock.now()
        )
        await uow.commit()
    assert await harness.fire_at(harness.clock.now() + timedelta(seconds=1)) == 2
    assert await harness.status(contract.name) == cpb.CONTRACT_STATUS_TERMINATED
    events = await _wait_for_types(nats_server, contract.name, 3)
    assert [e.type for e in events] == [
        "crm.contract.v1.ContractCreated",
        "crm.contract.v1.ContractSigned",
        "crm.contract.v1.ContractTerminated",
    ]


async def _wait_for_types(nats_server, name: str, count: int) -> list:
    """The events about `name` once `count` are there, plus a moment for any duplicate to show up."""
    for _ in range(100):
        events = await events_about(nats_server, name)
        if len(events) >= count:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.3)
    return await events_about(nats_server, name)
