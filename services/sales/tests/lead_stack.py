"""Test helpers for the leads area: the REAL customer service (restartable on the same port and
database) and a real Envoy gateway in front of in-process customer + sales services.

A test may import crm_customer; product code may not.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import json
from pathlib import Path

from crm_gateway import envoy_runner
from crm_gateway.catalog import RateLimit, load_catalog
from crm_gateway.envoy_config import write_config
from crm_shared.pii.crypto import generate_key
from crm_shared.runtime import start_service

REPO_ROOT = Path(__file__).resolve().parents[3]
DESCRIPTOR = REPO_ROOT / "build" / "crm.binpb"


def customer_settings(database_url: str, nats_url: str, jwt_keys, **overrides):
    from crm_customer.config import CustomerSettings

    values = dict(
        grpc_port=0,
        database_url=database_url,
        nats_url=nats_url,
        jwt_jwks_file=jwt_keys.jwks_path,
        jwt_issuer=jwt_keys.issuer,
        jwt_audience=jwt_keys.audience,
        pii_keys=f"k1:{generate_key()}",
        blind_index_key=generate_key(),
        page_token_secret="test-page-secret",
        shutdown_grace_seconds=2,
    )
    values.update(overrides)
    return CustomerSettings(**values)


def sales_settings(database_url: str, nats_url: str, jwt_keys, **overrides):
    """Like conftest.sales_settings (not importable by name when several conftest modules load)."""
    from crm_sales.config import SalesSettings

    values = dict(
        grpc_port=0,
        database_url=database_url,
        nats_url=nats_url,
        jwt_jwks_file=jwt_keys.jwks_path,
        jwt_issuer=jwt_keys.issuer,
        jwt_audience=jwt_keys.audience,
        pii_keys=f"k1:{generate_key()}",
        blind_index_key=generate_key(),
        page_token_secret="test-page-secret",
        shutdown_grace_seconds=2,
    )
    values.update(overrides)
    return SalesSettings(**values)


class CustomerStack:
    """The real customer service; stop() and start() again keep its port and database."""

    def __init__(self, settings) -> None:
        self.settings = settings
        self.running = None

    async def start(self) -> None:
        from crm_customer.bootstrap import build

        self.running = await start_service(self.settings, build)
        self.settings = self.settings.model_copy(update={"grpc_port": self.running.port})

    async def stop(self) -> None:
        if self.running is not None:
            await self.running.stop(0.5)
            self.running = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.settings.grpc_port}"


@dataclasses.dataclass
class Gateway:
    port: int
    admin_port: int
    process: object

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        envoy_runner.stop(self.process)


def start_gateway(
    workdir: Path, jwt_keys, *, customer_port: int, sales_port: int, capture_limit: RateLimit | None = None
) -> Gateway:
    """Envoy from the wheel, rendered by crm_gateway from services.yaml, pointed at our services."""
    port, admin_port = envoy_runner.free_port(), envoy_runner.free_port()
    catalog = load_catalog(
        env={
            "CRM_GATEWAY_PORT": str(port),
            "CRM_GATEWAY_ADMIN_PORT": str(admin_port),
            "CRM_GATEWAY_JWT_ISSUER": jwt_keys.issuer,
            "CRM_GATEWAY_JWT_AUDIENCE": jwt_keys.audience,
            "CRM_DEVSTACK_CUSTOMER_PORT": str(customer_port),
            "CRM_DEVSTACK_SALES_PORT": str(sales_port),
        }
    )
    if capture_limit is not None:
        services = tuple(
            dataclasses.replace(spec, rate_limits=(capture_limit,)) if spec.name == "sales" else spec
            for spec in catalog.services
        )
        catalog = dataclasses.replace(catalog, services=services)
    config = write_config(
        workdir / "envoy.yaml", descriptor=DESCRIPTOR, jwks=jwt_keys.jwks_path, catalog=catalog
    )
    log = (workdir / "envoy.log").open("wb")
    process = envoy_runner.start(config, stdout=log)
    envoy_runner.wait_ready(admin_port, process)
    return Gateway(port, admin_port, process)


def _http(port: int, method: str, path: str, body, token: str | None) -> tuple[int, dict, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    try:
        connection.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        response = connection.getresponse()
        raw = response.read()
        parsed = json.loads(raw) if raw.strip().startswith(b"{") else {"raw": raw.decode(errors="replace")}
        return response.status, {k.lower(): v for k, v in response.getheaders()}, parsed
    finally:
        connection.close()


async def rest(port: int, method: str, path: str, body=None, token: str | None = None):
    """(status, headers, JSON body) of a REST call through the gateway, off the event loop."""
    return await asyncio.to_thread(_http, port, method, path, body, token)
