"""Graceful stop: in-flight RPCs finish, health says NOT_SERVING, new calls fail, parts stop in order."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_test_service import RuntimeTestServicer, build_for

from crm.customer.v1 import customer_pb2, customer_service_pb2, customer_service_pb2_grpc
from crm_shared.grpc.status import error_details
from crm_shared.runtime import ServiceParts, StartupError, start_service
from crm_shared.settings import ServiceSettings

CUSTOMER = "customers/0190a1b2-0000-7000-8000-0000000000aa"


def slow_request(seconds: float) -> customer_service_pb2.UpdateCustomerRequest:
    return customer_service_pb2.UpdateCustomerRequest(
        customer=customer_pb2.Customer(name=CUSTOMER, display_name=str(seconds)),
        update_mask={"paths": ["display_name"]},
    )


class RecordingWorker:
    def __init__(self, name: str, journal: list[str]) -> None:
        self.name = name
        self.journal = journal

    async def start(self) -> None:
        self.journal.append(f"start {self.name}")

    async def stop(self) -> None:
        self.journal.append(f"stop {self.name}")


async def test_stop_lets_in_flight_calls_finish_and_refuses_new_ones(verifier, token_factory):
    servicer = RuntimeTestServicer()
    journal: list[str] = []
    base_build = build_for(servicer)

    async def build(settings, infrastructure) -> ServiceParts:
        parts = await base_build(settings, infrastructure)
        parts.workers = [RecordingWorker("relay", journal), RecordingWorker("consumer", journal)]

        async def close_db() -> None:
            journal.append("close db")

        parts.closers = [close_db]
        return parts

    settings = ServiceSettings(service_name="drain-test", grpc_port=0)
    running = await start_service(settings, build, verifier=verifier, connect_nats=False)
    auth = (("authorization", f"Bearer {token_factory()}"),)
    async with grpc.aio.insecure_channel(running.address) as channel:
        stub = customer_service_pb2_grpc.CustomerServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        in_flight = asyncio.ensure_future(stub.UpdateCustomer(slow_request(1.0), metadata=auth))
        await asyncio.wait_for(servicer.slow_call_started.wait(), 5)

        stopping = asyncio.ensure_future(running.stop(grace=5))
        await asyncio.sleep(0.1)
        assert not stopping.done()
        status = await health.Check(health_pb2.HealthCheckRequest(service="crm.customer.v1.CustomerService"))
        assert status.status == health_pb2.HealthCheckResponse.NOT_SERVING
        overall = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert overall.status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.UpdateCustomer(slow_request(0), metadata=auth)
        details = error_details(refused.value)
        assert (details.code, details.reason) == (grpc.StatusCode.UNAVAILABLE, "SERVER_DRAINING")

        finished = await asyncio.wait_for(in_flight, 5)
        assert finished.display_name == "1.0"
        await asyncio.wait_for(stopping, 5)
        await asyncio.wait_for(running.wait_closed(), 1)

        with pytest.raises(grpc.aio.AioRpcError) as after_stop:
            await stub.GetCustomer(
                customer_service_pb2.GetCustomerRequest(name=CUSTOMER), metadata=auth, timeout=2
            )
        assert after_stop.value.code() == grpc.StatusCode.UNAVAILABLE
    assert servicer.started_slow_calls == 1
    assert journal == ["start relay", "start consumer", "stop consumer", "stop relay", "close db"]


async def test_calls_still_running_when_the_grace_period_ends_are_cancelled(verifier, token_factory):
    servicer = RuntimeTestServicer()
    settings = ServiceSettings(service_name="grace-test", grpc_port=0)
    running = await start_service(settings, build_for(servicer), verifier=verifier, connect_nats=False)
    auth = (("authorization", f"Bearer {token_factory()}"),)
    async with grpc.aio.insecure_channel(running.address) as channel:
        stub = customer_service_pb2_grpc.CustomerServiceStub(channel)
        in_flight = asyncio.ensure_future(stub.UpdateCustomer(slow_request(30), metadata=auth))
        await asyncio.wait_for(servicer.slow_call_started.wait(), 5)
        started = time.monotonic()
        await running.stop(grace=0.3)
        assert time.monotonic() - started < 5
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await asyncio.wait_for(in_flight, 5)
        assert raised.value.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)


async def test_nats_is_connected_for_the_build_and_closed_on_stop(verifier, nats_server):
    seen = {}

    async def build(settings, infrastructure) -> ServiceParts:
        seen["connected"] = infrastructure.nats.is_connected
        seen["stream_info"] = await infrastructure.js.account_info()
        return ServiceParts(servicers=[], service_names=[])

    settings = ServiceSettings(service_name="nats-test", grpc_port=0, nats_url=nats_server.url)
    running = await start_service(settings, build, verifier=verifier)
    assert seen["connected"] and seen["stream_info"] is not None
    await running.stop(grace=1)
    assert running.infrastructure.nats.is_closed


async def test_a_service_without_jwt_keys_refuses_to_start():
    settings = ServiceSettings(
        service_name="keyless", grpc_port=0, jwt_jwks_file=None, jwt_public_key_file=None
    )

    async def build(settings, infrastructure) -> ServiceParts:
        raise AssertionError("build must not run without keys")

    with pytest.raises(StartupError, match="no JWT verification key"):
        await start_service(settings, build, connect_nats=False)


async def test_a_worker_that_fails_to_start_stops_the_ones_already_started(verifier):
    journal: list[str] = []

    class BrokenWorker(RecordingWorker):
        async def start(self) -> None:
            raise RuntimeError("cannot subscribe")

    async def build(settings, infrastructure) -> ServiceParts:
        return ServiceParts(
            servicers=[],
            service_names=[],
            workers=[RecordingWorker("relay", journal), BrokenWorker("consumer", journal)],
        )

    settings = ServiceSettings(service_name="broken", grpc_port=0)
    with pytest.raises(RuntimeError, match="cannot subscribe"):
        await start_service(settings, build, verifier=verifier, connect_nats=False)
    assert journal == ["start relay", "stop relay"]


SERVICE_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from crm.customer.v1 import customer_service_pb2_grpc
    from crm_shared.runtime import ServiceParts, run_service
    from crm_shared.settings import ServiceSettings

    class Slow(customer_service_pb2_grpc.CustomerServiceServicer):
        async def UpdateCustomer(self, request, context):
            print("slow call started", flush=True)
            await asyncio.sleep(float(request.customer.display_name))
            return request.customer

    async def build(settings, infrastructure):
        return ServiceParts(
            servicers=[(customer_service_pb2_grpc.add_CustomerServiceServicer_to_server, Slow())],
            service_names=["crm.customer.v1.CustomerService"],
        )

    run_service(ServiceSettings(), build)
    """
)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_sigterm_mid_rpc_finishes_the_rpc_and_exits_zero(
    jwt_keys, token_factory, nats_server, tmp_path: Path
):
    script = tmp_path / "slow_service.py"
    script.write_text(SERVICE_SCRIPT)
    port = free_port()
    env = {
        **os.environ,
        "CRM_SERVICE_NAME": "sigterm-test",
        "CRM_GRPC_PORT": str(port),
        "CRM_JWT_JWKS_FILE": str(jwt_keys.jwks_path),
        "CRM_JWT_ISSUER": jwt_keys.issuer,
        "CRM_JWT_AUDIENCE": jwt_keys.audience,
        "CRM_NATS_URL": nats_server.url,
        "CRM_SHUTDOWN_GRACE_SECONDS": "10",
    }
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    process = subprocess.Popen(  # noqa: ASYNC220 - a real child process is the point of this test
        [sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        auth = (("authorization", f"Bearer {token_factory()}"),)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            await wait_until_serving(health, process)
            stub = customer_service_pb2_grpc.CustomerServiceStub(channel)
            in_flight = asyncio.ensure_future(stub.UpdateCustomer(slow_request(1.5), metadata=auth))
            await asyncio.sleep(0.5)
            sent_at = time.monotonic()
            process.send_signal(signal.SIGTERM)
            response = await asyncio.wait_for(in_flight, 10)
            assert response.display_name == "1.5"
        return_code = await asyncio.to_thread(process.wait, 10)
        output = process.stdout.read()
        assert return_code == 0, output
        assert time.monotonic() - sent_at < 10
        # run_service configured JSON logging: every line the runtime wrote parses and names the service.
        entries = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        assert any(entry["message"] == "sigterm-test: stopped" for entry in entries), output
        assert all(entry["service"] == "sigterm-test" for entry in entries)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def wait_until_serving(health: health_pb2_grpc.HealthStub, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"service exited early: {process.stdout.read()}")
        try:
            response = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
            if response.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.aio.AioRpcError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("service did not become SERVING")


async def test_a_port_already_in_use_is_a_startup_error(verifier):
    async def build(settings, infrastructure) -> ServiceParts:
        return ServiceParts(servicers=[], service_names=[])

    first = await start_service(
        ServiceSettings(service_name="first", grpc_port=0), build, verifier=verifier, connect_nats=False
    )
    try:
        with pytest.raises(StartupError, match="cannot listen"):
            await start_service(
                ServiceSettings(service_name="second", grpc_port=first.port),
                build,
                verifier=verifier,
                connect_nats=False,
            )
    finally:
        await first.stop(grace=0)
