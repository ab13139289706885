"""A real Envoy from the wheel in front of the in-process stand-in customer service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from crm_gateway import envoy_runner
from crm_gateway.catalog import Catalog, load_catalog
from crm_gateway.envoy_config import write_config
from crm_gateway.standin import StandInCustomerService, TokenCheck, start_server
from crm_shared.auth.dev_keys import DevKeys, generate_dev_keys, mint_token

REPO_ROOT = Path(__file__).resolve().parents[2]
DESCRIPTOR = REPO_ROOT / "build" / "crm.binpb"


@dataclass
class Gateway:
    port: int
    admin_port: int
    catalog: Catalog
    keys: DevKeys
    config: Path
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self, **overrides) -> str:
        claims = {
            "subject": "alice",
            "roles": ["admin"],
            "team": "east",
            "issuer": self.catalog.jwt_issuer,
            "audience": self.catalog.jwt_audience,
            "ttl_seconds": 300,
        } | overrides
        return mint_token(self.keys, **claims)


@pytest.fixture(scope="session")
def descriptor() -> Path:
    if not DESCRIPTOR.exists():
        pytest.fail(f"{DESCRIPTOR} missing: run `make proto` first")
    return DESCRIPTOR


@pytest.fixture(scope="module")
def dev_keys(tmp_path_factory) -> DevKeys:
    return generate_dev_keys(tmp_path_factory.mktemp("keys"))


@pytest_asyncio.fixture(scope="module")
async def upstream(dev_keys) -> AsyncIterator[tuple[StandInCustomerService, int]]:
    catalog = load_catalog(env={})
    servicer = StandInCustomerService(
        tokens=TokenCheck(catalog.jwt_issuer, catalog.jwt_audience, str(dev_keys.jwks_path))
    )
    server, port, _ = await start_server(servicer)
    yield servicer, port
    await server.stop(0)


@pytest.fixture(scope="module")
def gateway(upstream, dev_keys, descriptor, tmp_path_factory) -> Iterator[Gateway]:
    _, upstream_port = upstream
    port, admin_port = envoy_runner.free_port(), envoy_runner.free_port()
    catalog = load_catalog(
        env={
            "CRM_GATEWAY_PORT": str(port),
            "CRM_GATEWAY_ADMIN_PORT": str(admin_port),
            "CRM_DEVSTACK_CUSTOMER_PORT": str(upstream_port),
        }
    )
    workdir = tmp_path_factory.mktemp("envoy")
    config = write_config(
        workdir / "envoy.yaml", descriptor=descriptor, jwks=dev_keys.jwks_path, catalog=catalog
    )
    envoy_runner.validate(config)
    log = workdir / "envoy.log"
    with log.open("wb") as sink:
        process = envoy_runner.start(config, stdout=sink)
    try:
        envoy_runner.wait_ready(admin_port, process)
        yield Gateway(port, admin_port, catalog, dev_keys, config, log)
    finally:
        envoy_runner.stop(process)


@pytest_asyncio.fixture(scope="module")
async def channel(gateway) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as chan:
        yield chan
