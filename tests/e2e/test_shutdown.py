"""Graceful shutdown of the real customer service process under load, with its events.

`python -m crm_customer` runs as a subprocess against a real NATS; ~100 CreateCustomer calls are
in flight when it gets SIGTERM, and more keep arriving while it drains. What must hold:
every call that returned OK has exactly one CustomerCreated event in CRM_CUSTOMER (none missing,
none doubled, none for a call that failed); refused calls get UNAVAILABLE, never INTERNAL;
gRPC health says NOT_SERVING while draining; the process exits 0 within its grace period.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from e2e_client import unique
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crm.customer.v1 import customer_pb2 as pb
from crm.customer.v1 import customer_service_pb2 as rpc
from crm.customer.v1 import customer_service_pb2_grpc as rpc_grpc
from crm_gateway.catalog import load_catalog
from crm_gateway.envoy_runner import free_port
from crm_shared.auth.dev_keys import generate_dev_keys, mint_token
from crm_shared.grpc.status import error_details
from crm_shared.testing.events import stream_envelopes
from crm_shared.testing.fixtures_nats import connect_nats

pytestmark = pytest.mark.asyncio(loop_scope="session")

GRACE_SECONDS = 10.0
FIRST_WAVE = 100
DONE_BEFORE_SIGTERM = 5
LATE_CALLS = 40
CREATED_TYPE = "crm.customer.v1.CustomerCreated"

ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}
Outcome = tuple[grpc.StatusCode, str]  # (code, customer name or error text)


def _key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass
class ServiceProcess:
    process: subprocess.Popen
    target: str
    token: str
    actor: str  # the token's subject: the creator of every customer this test makes
    log: Path

    def output(self) -> str:
        text = self.log.read_text(errors="replace")
        if os.environ.get("CRM_E2E_KEEP_LOGS"):
            Path(os.environ["CRM_E2E_KEEP_LOGS"]).write_text(text)
        return text


def _wait_serving(service: ServiceProcess, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    with grpc.insecure_channel(service.target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if service.process.poll() is not None:
                raise AssertionError(f"service exited with {service.process.returncode}:\n{service.output()}")
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
            except grpc.RpcError:
                status = None
            if status == health_pb2.HealthCheckResponse.SERVING:
                return
            time.sleep(0.1)
    raise AssertionError(f"service not SERVING after {within:.0f}s:\n{service.output()}")


@pytest.fixture
def customer_process(nats_server, tmp_path) -> Iterator[ServiceProcess]:
    """`python -m crm_customer` configured only through CRM_CUSTOMER_* variables, SERVING."""
    catalog = load_catalog(env={})
    keys = generate_dev_keys(tmp_path / "keys")
    port = free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    env.update(
        {
            "CRM_CUSTOMER_GRPC_HOST": "127.0.0.1",
            "CRM_CUSTOMER_GRPC_PORT": str(port),
            "CRM_CUSTOMER_METRICS_PORT": "0",
            "CRM_CUSTOMER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'customer.db'}",
            "CRM_CUSTOMER_NATS_URL": nats_server.url,
            "CRM_CUSTOMER_JWT_JWKS_FILE": str(keys.jwks_path),
            "CRM_CUSTOMER_JWT_ISSUER": catalog.jwt_issuer,
            "CRM_CUSTOMER_JWT_AUDIENCE": catalog.jwt_audience,
            "CRM_CUSTOMER_PAGE_TOKEN_SECRET": _key(),
            "CRM_CUSTOMER_PII_KEYS": f"k1:{_key()}",
            "CRM_CUSTOMER_BLIND_INDEX_KEY": _key(),
            "CRM_CUSTOMER_SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
            "CRM_CUSTOMER_LOG_JSON": "true",
        }
    )
    actor = unique("drain")
    token = mint_token(
        keys,
        subject=actor,
        roles=["admin"],
        team="east",
        issuer=catalog.jwt_issuer,
        audience=catalog.jwt_audience,
        ttl_seconds=600,
    )
    log = tmp_path / "customer.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "crm_customer"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service = ServiceProcess(process, f"127.0.0.1:{port}", token, actor, log)
    try:
        _wait_serving(service)
        yield service
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


class Load:
    """CreateCustomer calls, each with its own unique email; counts the finished ones."""

    def __init__(self, channel: grpc.aio.Channel, service: ServiceProcess) -> None:
        self._stub = rpc_grpc.CustomerServiceStub(channel)
        self._service = service
        self._metadata = (("authorization", f"Bearer {service.token}"),)
        self.finished = 0
        self.enough_finished = asyncio.Event()

    async def create(self, i: int) -> Outcome:
        actor = self._service.actor
        customer = pb.Customer(
            display_name=f"{actor} {i:03d}",
            kind=pb.CUSTOMER_KIND_COMPANY,
            email_addresses=[pb.EmailAddress(address=f"{actor}-{i}@drain.example")],
        )
        try:
            reply = await self._stub.CreateCustomer(
                rpc.CreateCustomerRequest(customer=customer), metadata=self._metadata, timeout=30
            )
            outcome: Outcome = (grpc.StatusCode.OK, reply.name)
        except grpc.aio.AioRpcError as error:
            details = error_details(error)
            outcome = (details.code, f"{details.reason}: {details.message}")
        self.finished += 1
        if self.finished >= DONE_BEFORE_SIGTERM:
            self.enough_finished.set()
        return outcome

    async def keep_calling(self, first: int, count: int) -> list[Outcome]:
        """New calls every 10 ms while the process lives: they arrive during the drain."""
        tasks = []
        for i in range(first, first + count):
            if self._service.process.poll() is not None:
                break
            tasks.append(asyncio.create_task(self.create(i)))
            await asyncio.sleep(0.01)
        return list(await asyncio.gather(*tasks))


async def poll_health(channel: grpc.aio.Channel, process: subprocess.Popen, until: float) -> list[str]:
    """Overall health, back to back, until the process is gone (bounded by `until`)."""
    stub = health_pb2_grpc.HealthStub(channel)
    seen = []
    while process.poll() is None and time.monotonic() < until:
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
            seen.append(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
        except grpc.aio.AioRpcError as error:
            seen.append(error.code().name)
        await asyncio.sleep(0.005)
    return seen


async def created_events(nats_url: str, actor: str) -> collections.Counter[str]:
    """CustomerCreated events by customer name, for customers `actor` created."""
    nc = await connect_nats(nats_url)
    try:
        envelopes = await stream_envelopes(nc.jetstream(timeout=5), "CRM_CUSTOMER", "crm.customer.>")
    finally:
        await nc.close()
    return collections.Counter(
        envelope.subject
        for _, envelope in envelopes
        if envelope.type == CREATED_TYPE and envelope.actor.subject == actor
    )


async def test_sigterm_under_load_loses_no_event_and_refuses_cleanly(customer_process, nats_server):
    service = customer_process
    async with (
        grpc.aio.insecure_channel(service.target) as channel,
        grpc.aio.insecure_channel(service.target) as probe,
    ):
        load = Load(channel, service)
        first_wave = [asyncio.create_task(load.create(i)) for i in range(FIRST_WAVE)]
        await asyncio.wait_for(load.enough_finished.wait(), 30)
        in_flight_at_sigterm = FIRST_WAVE - load.finished
        assert in_flight_at_sigterm > 0, "every call finished before SIGTERM"
        service.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()

        health = asyncio.create_task(poll_health(probe, service.process, signalled + GRACE_SECONDS + 5))
        late = await load.keep_calling(FIRST_WAVE, LATE_CALLS)
        outcomes = list(await asyncio.gather(*first_wave)) + late
        status = await asyncio.to_thread(service.process.wait, GRACE_SECONDS + 5)
        exited_after = time.monotonic() - signalled
        health_seen = await health

    output = service.output()
    assert status == 0, output[-4000:]
    assert exited_after < GRACE_SECONDS, f"took {exited_after:.1f}s to exit"
    assert "draining" in output and "stopped" in output

    codes = collections.Counter(code for code, _ in outcomes)
    odd = [(i, code.name, text) for i, (code, text) in enumerate(outcomes) if code not in ALLOWED]
    # gRPC core answers CANCELLED (no ErrorInfo: not our code) to a call it had received but not yet
    # handed to the server when server.stop() begins (grpc/grpc#41785). Tolerated only for calls
    # sent after SIGTERM, and only in that exact form; anything else (INTERNAL above all) fails.
    core_race = [o for o in odd if o[0] >= FIRST_WAVE and o[1:] == ("CANCELLED", ": CANCELLED")]
    assert odd == core_race, f"{codes}: {odd[:5]}"
    errors = [line for line in output.splitlines() if '"level": "ERROR"' in line or "Traceback" in line]
    assert not errors, errors[:3]
    assert codes[grpc.StatusCode.OK] >= FIRST_WAVE - in_flight_at_sigterm
    assert codes[grpc.StatusCode.UNAVAILABLE] >= 1, f"no call arrived during the drain: {codes}"

    assert "NOT_SERVING" in health_seen, health_seen
    # Down once SIGTERM arrived, and never back up while draining.
    assert "SERVING" not in health_seen[health_seen.index("NOT_SERVING") :], health_seen

    ok_names = [name for code, name in outcomes if code == grpc.StatusCode.OK]
    assert len(set(ok_names)) == len(ok_names)
    events = await created_events(nats_server.url, service.actor)
    missing = set(ok_names) - set(events)
    doubled = {name: count for name, count in events.items() if count > 1}
    unexpected = set(events) - set(ok_names)
    assert not missing, f"{len(missing)} of {len(ok_names)} OK creates have no event"
    assert not doubled, f"events published twice: {doubled}"
    assert not unexpected, f"events for calls that did not return OK: {unexpected}"
