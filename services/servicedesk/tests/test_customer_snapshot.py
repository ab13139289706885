"""The customer snapshot: taken at creation from the REAL customer service, or later by a timer.

With the customer service down a ticket is still created, fast, with the snapshot PENDING; the
durable retry timer (ManualClock + run_due) fetches it once the service is back, using the
servicedesk's service identity token (read from a file, re-read when it appears). With the
customer service up the snapshot is FETCHED at once. A test may import crm_customer; product
code may not.
"""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from servicedesk_testkit import servicedesk_settings

from crm.customer.v1 import customer_pb2, customer_service_pb2, customer_service_pb2_grpc
from crm.servicedesk.v1 import ticket_service_pb2 as pb
from crm.servicedesk.v1 import ticket_service_pb2_grpc as pb_grpc
from crm_servicedesk.api.tickets import TicketServicer
from crm_servicedesk.bootstrap import build
from crm_servicedesk.service.customer_snapshots import SNAPSHOT_RETRY_TIMER
from crm_servicedesk.timers import timer_handlers
from crm_shared import timers
from crm_shared.clock import ManualClock
from crm_shared.pii.crypto import generate_key
from crm_shared.runtime import start_service
from crm_shared.timers import TimerScheduler

pytestmark = pytest.mark.asyncio(loop_scope="session")

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class CustomerStack:
    """The real customer service on a fixed port and database: stopped and started again at will."""

    def __init__(self, database_url: str, nats_url: str, jwt_keys, port: int) -> None:
        from crm_customer.config import CustomerSettings

        self.settings = CustomerSettings(
            grpc_port=port,
            database_url=database_url,
            nats_url=nats_url,
            jwt_jwks_file=jwt_keys.jwks_path,
            jwt_issuer=jwt_keys.issuer,
            jwt_audience=jwt_keys.audience,
            pii_keys=f"k1:{generate_key()}",
            blind_index_key=generate_key(),
            page_token_secret="test-page-secret",
            shutdown_grace_seconds=1,
        )
        self.running = None

    async def start(self) -> None:
        from crm_customer.bootstrap import build as build_customer

        self.running = await start_service(self.settings, build_customer)

    async def stop(self) -> None:
        if self.running is not None:
            await self.running.stop(0.5)
            self.running = None

    async def create_customer(self, metadata, name: str) -> str:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.settings.grpc_port}") as channel:
            created = await customer_service_pb2_grpc.CustomerServiceStub(channel).CreateCustomer(
                customer_service_pb2.CreateCustomerRequest(
                    customer=customer_pb2.Customer(
                        kind=customer_pb2.CUSTOMER_KIND_COMPANY,
                        display_name=name,
                        tier=customer_pb2.CUSTOMER_TIER_A,
                        lifecycle_stage=customer_pb2.LIFECYCLE_STAGE_ACTIVE,
                        owner="olga",
                        team="east",
                    )
                ),
                metadata=metadata,
            )
        return created.name


@pytest.fixture
async def stack(database_url, nats_server, jwt_keys, token_factory, tmp_path):
    """A servicedesk (ManualClock, timers fired by the test) and a customer service on `port`."""
    port = free_port()
    customers = CustomerStack(f"sqlite+aiosqlite:///{tmp_path}/customer.db", nats_server.url, jwt_keys, port)
    token_file = tmp_path / "service.jwt"
    clock = ManualClock(START)
    settings = servicedesk_settings(
        database_url,
        nats_server.url,
        jwt_keys,
        customer_target=f"127.0.0.1:{port}",
        customer_snapshot_timeout_seconds=0.5,
        service_token_file=str(token_file),
    )
    running = await start_service(settings, build, clock=clock)
    try:
        for worker in running.parts.workers:
            if isinstance(worker, TimerScheduler):
                await worker.stop()
        app = next(s for _, s in running.parts.servicers if isinstance(s, TicketServicer))._app
        scheduler = TimerScheduler(
            app.db, app.uow_factory.tables, app.uow_factory, clock=clock, handlers=timer_handlers(app)
        )
        async with grpc.aio.insecure_channel(running.address) as channel:
            yield {
                "tickets": pb_grpc.TicketServiceStub(channel),
                "customers": customers,
                "clock": clock,
                "scheduler": scheduler,
                "app": app,
                "token_file": token_file,
                "service_token": token_factory(subject="servicedesk", roles=("service",), team=""),
            }
    finally:
        await customers.stop()
        await running.stop(1)


async def pending_retry(app, ticket_name: str):
    async with app.db.read_session() as session:
        return await timers.get_timer(
            session, app.uow_factory.tables, SNAPSHOT_RETRY_TIMER, ticket_name.removeprefix("tickets/")
        )


async def test_a_ticket_is_created_with_the_customer_service_down_and_snapshotted_later(stack, as_user):
    admin = as_user("admin", "root", "hq")
    customers, tickets, clock, scheduler = (
        stack["customers"],
        stack["tickets"],
        stack["clock"],
        stack["scheduler"],
    )
    await customers.start()
    customer = await customers.create_customer(admin, "Acme GmbH")
    await customers.stop()

    agent = as_user("support_agent", "sam", "support-east")
    began = time.monotonic()
    ticket = await tickets.CreateTicket(
        pb.CreateTicketRequest(ticket=pb.Ticket(subject="Invoice wrong", customer=customer)), metadata=agent
    )
    assert time.monotonic() - began < 3
    assert ticket.customer_snapshot.state == pb.CUSTOMER_SNAPSHOT_STATE_PENDING
    assert (await pending_retry(stack["app"], ticket.name)).due_at == START + timedelta(minutes=1)

    await customers.start()
    # No service identity yet: the retry logs, keeps PENDING and backs off (2 minutes).
    clock.set(START + timedelta(minutes=1))
    assert await scheduler.run_due() == 1
    still = await tickets.GetTicket(pb.GetTicketRequest(name=ticket.name), metadata=agent)
    assert still.customer_snapshot.state == pb.CUSTOMER_SNAPSHOT_STATE_PENDING
    assert (await pending_retry(stack["app"], ticket.name)).due_at == START + timedelta(minutes=3)

    stack["token_file"].write_text(stack["service_token"])
    clock.set(START + timedelta(minutes=2, seconds=59))
    assert await scheduler.run_due() == 0
    clock.set(START + timedelta(minutes=3))
    assert await scheduler.run_due() == 1
    fetched = await tickets.GetTicket(pb.GetTicketRequest(name=ticket.name), metadata=agent)
    snapshot = fetched.customer_snapshot
    assert (snapshot.state, snapshot.display_name, snapshot.tier, snapshot.lifecycle_stage) == (
        pb.CUSTOMER_SNAPSHOT_STATE_FETCHED,
        "Acme GmbH",
        "A",
        "active",
    )
    assert (snapshot.owner, snapshot.team) == ("olga", "east")
    assert await pending_retry(stack["app"], ticket.name) is None


async def test_with_the_customer_service_up_the_snapshot_is_taken_at_creation(stack, as_user):
    admin = as_user("admin", "root", "hq")
    await stack["customers"].start()
    customer = await stack["customers"].create_customer(admin, "Globex")
    ticket = await stack["tickets"].CreateTicket(
        pb.CreateTicketRequest(ticket=pb.Ticket(subject="Login fails", customer=customer)),
        metadata=as_user("support_agent", "sam", "support-east"),
    )
    assert (
        ticket.customer_snapshot.state,
        ticket.customer_snapshot.display_name,
        ticket.customer_snapshot.tier,
    ) == (
        pb.CUSTOMER_SNAPSHOT_STATE_FETCHED,
        "Globex",
        "A",
    )
    assert await pending_retry(stack["app"], ticket.name) is None

    missing = await stack["tickets"].CreateTicket(
        pb.CreateTicketRequest(
            ticket=pb.Ticket(subject="Who am I", customer="customers/00000000-0000-7000-8000-000000000000")
        ),
        metadata=admin,
    )
    assert missing.customer_snapshot.state == pb.CUSTOMER_SNAPSHOT_STATE_NOT_FOUND


async def test_a_customer_portal_ticket_gets_its_snapshot_through_the_service_identity(stack, as_user):
    """The portal's token may not read customers: the snapshot waits for the retry, never fails creation."""
    await stack["customers"].start()
    customer = await stack["customers"].create_customer(as_user("admin", "root", "hq"), "Initech")
    stack["token_file"].write_text(stack["service_token"])
    portal = as_user("customer_portal", "jane", "")
    ticket = await stack["tickets"].CreateTicket(
        pb.CreateTicketRequest(ticket=pb.Ticket(subject="Where is my order", customer=customer)),
        metadata=portal,
    )
    assert ticket.requester == "jane"
    stack["clock"].set(START + timedelta(minutes=1))
    assert await stack["scheduler"].run_due() == 1
    seen = await stack["tickets"].GetTicket(
        pb.GetTicketRequest(name=ticket.name), metadata=as_user("support_manager", "maria", "support")
    )
    assert (seen.customer_snapshot.state, seen.customer_snapshot.display_name) == (
        pb.CUSTOMER_SNAPSHOT_STATE_FETCHED,
        "Initech",
    )
