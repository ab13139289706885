"""`python -m crm_shared.grpc.healthcheck` (the images' HEALTHCHECK) against a real customer service.

The service runs in this process (crm_shared.runtime.start_service on a free port, SQLite, no
NATS); the check runs as its own process, as Docker runs it.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from grpc_health.v1 import health_pb2

from crm_customer.bootstrap import build
from crm_customer.config import CustomerSettings
from crm_shared.pii.crypto import generate_key
from crm_shared.runtime import RunningService, start_service
from crm_shared.testing.fixtures_auth import JwtTestKeys


@pytest_asyncio.fixture(loop_scope="session")
async def customer(tmp_path: Path, jwt_keys: JwtTestKeys) -> AsyncIterator[RunningService]:
    settings = CustomerSettings(
        grpc_port=0,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'customer.db'}",
        jwt_jwks_file=jwt_keys.jwks_path,
        jwt_issuer=jwt_keys.issuer,
        jwt_audience=jwt_keys.audience,
        pii_keys=f"k1:{generate_key()}",
        blind_index_key=generate_key(),
        page_token_secret="healthcheck-test-page-secret",
    )
    running = await start_service(settings, build, connect_nats=False)
    try:
        yield running
    finally:
        await running.stop(1)


async def healthcheck(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "crm_shared.grpc.healthcheck",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return process.returncode, stdout.decode().strip(), stderr.decode().strip()


async def test_a_serving_service_is_healthy(customer: RunningService) -> None:
    code, out, err = await healthcheck("--address", customer.address)
    assert (code, err) == (0, "")
    assert out.endswith("SERVING")


async def test_one_of_its_grpc_services_can_be_asked_by_name(customer: RunningService) -> None:
    code, _, err = await healthcheck(
        "--address", customer.address, "--service", "crm.customer.v1.PoolService"
    )
    assert code == 0, err


async def test_a_draining_service_is_unhealthy(customer: RunningService) -> None:
    # What a SIGTERMed service says while in-flight RPCs finish: Docker must stop routing to it.
    await customer.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    code, _, err = await healthcheck("--address", customer.address)
    assert code == 1
    assert err.endswith("server: NOT_SERVING")


async def test_an_unknown_service_name_is_unhealthy_and_says_so(customer: RunningService) -> None:
    code, _, err = await healthcheck("--address", customer.address, "--service", "crm.nope.v1.Nothing")
    assert code == 1
    assert err == f"{customer.address} does not know the service 'crm.nope.v1.Nothing'"


async def test_a_closed_port_is_unhealthy_with_one_line() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    # The port was free a moment ago and nothing listens on it now.
    code, out, err = await healthcheck("--address", address, "--timeout", "1")
    assert code == 1
    assert out == ""
    assert err.startswith(f"{address} is unavailable:")
    assert len(err.splitlines()) == 1
