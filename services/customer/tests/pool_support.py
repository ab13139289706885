"""A customer service on a ManualClock whose timer scheduler the test drives (pool and follow-up tests).

`pool_env` starts the real service (gRPC on port 0, SQLite or PostgreSQL, the session's NATS),
stops the background TimerScheduler loop, and hands the test the scheduler: move the clock,
then `await env.fire()` runs every timer due at that moment, exactly as the loop would.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import pytest
import pytest_asyncio
from customer_testkit import customer_settings

from crm.customer.v1 import customer_pb2 as pb
from crm.customer.v1 import customer_service_pb2 as customer_rpc
from crm.customer.v1 import customer_service_pb2_grpc as customer_grpc
from crm.customer.v1 import follow_up_service_pb2_grpc as follow_up_grpc
from crm.customer.v1 import pool_service_pb2 as pool_rpc
from crm.customer.v1 import pool_service_pb2_grpc as pool_grpc
from crm_customer.bootstrap import build
from crm_shared.clock import ManualClock
from crm_shared.grpc.status import error_details
from crm_shared.runtime import start_service
from crm_shared.testing.events import wait_for_envelopes
from crm_shared.timers import TimerScheduler

# A Monday 09:30 UTC; deadlines are checked to the second, never rounded to days.
T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
CUSTOMER_STREAM = "CRM_CUSTOMER"


@dataclass
class PoolEnv:
    running: object
    clock: ManualClock
    scheduler: TimerScheduler
    customers: customer_grpc.CustomerServiceStub
    pools: pool_grpc.PoolServiceStub
    follow_ups: follow_up_grpc.FollowUpServiceStub
    js: object
    token_factory: object

    def user(self, role: str = "admin", subject: str = "root", team: str = "east"):
        token = self.token_factory(subject=subject, roles=(role,), team=team)
        return (("authorization", f"Bearer {token}"),)

    async def fire(self) -> int:
        return await self.scheduler.run_due()

    async def at(self, moment: datetime) -> int:
        """Move the clock to `moment` and fire what is due then."""
        self.clock.set(moment)
        return await self.fire()

    async def new_pool(self, *, members=("alice", "bob"), teams=(), team="east", rules=None, as_=None):
        pool = pool_rpc.Pool(
            display_name=f"pool {uuid.uuid4().hex[:6]}",
            team=team,
            member_users=list(members),
            member_teams=list(teams),
            rules=rules or pool_rpc.PoolRules(),
        )
        return await self.pools.CreatePool(pool_rpc.CreatePoolRequest(pool=pool), metadata=as_ or self.user())

    async def new_customer(
        self, *, owner="root", team="east", tier=pb.CUSTOMER_TIER_B, as_=None
    ) -> pb.Customer:
        customer = pb.Customer(
            display_name=f"Acme {uuid.uuid4().hex[:6]}",
            kind=pb.CUSTOMER_KIND_COMPANY,
            tier=tier,
            owner=owner,
            team=team,
            email_addresses=[pb.EmailAddress(address=f"buyer-{uuid.uuid4().hex[:8]}@acme.example")],
        )
        return await self.customers.CreateCustomer(
            customer_rpc.CreateCustomerRequest(customer=customer), metadata=as_ or self.user()
        )

    async def pooled_customer(self, pool: pool_rpc.Pool, **kw) -> pb.Customer:
        """A customer waiting in `pool` (created by an admin and released into it)."""
        customer = await self.new_customer(**kw)
        return await self.pools.ReleaseToPool(
            pool_rpc.ReleaseToPoolRequest(
                name=customer.name, pool=pool.name, reason=pool_rpc.RELEASE_REASON_OTHER
            ),
            metadata=self.user(),
        )

    async def claim(self, customer: pb.Customer, subject: str, team: str = "east", **kw) -> pb.Customer:
        return await self.pools.ClaimCustomer(
            pool_rpc.ClaimCustomerRequest(name=customer.name, **kw),
            metadata=self.user("sales_rep", subject, team),
        )

    async def get(self, customer: pb.Customer) -> pb.Customer:
        return await self.customers.GetCustomer(
            customer_rpc.GetCustomerRequest(name=customer.name), metadata=self.user()
        )

    async def events(self, subject: str, resource: str, count: int = 1, within: float = 10.0):
        return await wait_for_envelopes(
            self.js, CUSTOMER_STREAM, subject=subject, resource=resource, count=count, within=within
        )


async def expect_error(call, code: grpc.StatusCode, reason: str | None = None):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    details = error_details(caught.value)
    assert details.code == code, f"{details.code} {details.reason} {details.message}"
    if reason is not None:
        assert details.reason == reason, f"{details.reason}: {details.message}"
    return details


async def eventually(check, within: float = 10.0):
    """Poll an async predicate until it returns something truthy (bounded wait for consumers)."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.1)


def ts(moment: datetime):
    from google.protobuf.timestamp_pb2 import Timestamp

    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def when(stamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


@pytest_asyncio.fixture(loop_scope="session")
async def pool_env(database_url, nats_server, jwt_keys, token_factory, jetstream):
    clock = ManualClock(T0)
    running = await start_service(
        customer_settings(database_url, nats_server.url, jwt_keys), build, clock=clock
    )
    scheduler = next(w for w in running.parts.workers if isinstance(w, TimerScheduler))
    await scheduler.stop()  # the test moves the clock and fires timers itself
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            yield PoolEnv(
                running=running,
                clock=clock,
                scheduler=scheduler,
                customers=customer_grpc.CustomerServiceStub(channel),
                pools=pool_grpc.PoolServiceStub(channel),
                follow_ups=follow_up_grpc.FollowUpServiceStub(channel),
                js=jetstream.js,
                token_factory=token_factory,
            )
    finally:
        await running.stop(1)
