"""The real stack for the cross-service end-to-end tests: NATS, the customer service process and
Envoy, started once per session by crm_gateway.devstack on free ports and a temporary data dir.

Nothing here needs PostgreSQL: the services use SQLite files in the data dir.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from crm_gateway import devstack
from crm_gateway.catalog import load_catalog
from crm_gateway.envoy_runner import free_port
from crm_shared.auth.dev_keys import mint_token


@dataclass
class E2EStack:
    stack: devstack.Stack

    @property
    def gateway_port(self) -> int:
        return self.stack.catalog.listen_port

    @property
    def gateway(self) -> str:
        return f"127.0.0.1:{self.gateway_port}"

    @property
    def customer_port(self) -> int:
        return self.stack.catalog.service("customer").dev_port

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.stack.nats_port}"

    def token(
        self,
        role: str = "admin",
        subject: str = "alice",
        team: str = "east",
        *,
        ttl: int = 600,
        issuer: str | None = None,
        audience: str | None = None,
        now: float | None = None,
    ) -> str:
        return mint_token(
            self.stack.keys,
            subject=subject,
            roles=[role],
            team=team,
            issuer=issuer or self.stack.catalog.jwt_issuer,
            audience=audience or self.stack.catalog.jwt_audience,
            ttl_seconds=ttl,
            now=now,
        )

    def expired_token(self) -> str:
        return self.token(ttl=60, now=time.time() - 3600)


@pytest.fixture(scope="session")
def e2e_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2EStack]:
    """`make run` for real (devstack.Stack), on free ports; stopped in order at the end."""
    overrides = {
        "CRM_DATA_DIR": str(tmp_path_factory.mktemp("crm-e2e")),
        "CRM_GATEWAY_PORT": str(free_port()),
        "CRM_GATEWAY_ADMIN_PORT": str(free_port()),
        "CRM_DEVSTACK_NATS_PORT": str(free_port()),
    }
    # Every service in services.yaml, as the real module, on free ports.
    for spec in load_catalog(env={}).services:
        upper = spec.name.upper()
        overrides[f"CRM_DEVSTACK_{upper}_PORT"] = str(free_port())
        overrides[f"CRM_DEVSTACK_{upper}_METRICS_PORT"] = str(free_port())
        overrides[f"CRM_DEVSTACK_{upper}_MODULE"] = spec.module
    # build_stack() and Stack.start() read the environment (catalog, data dir, service env).
    with pytest.MonkeyPatch.context() as patch:
        for key, value in overrides.items():
            patch.setenv(key, value)
        # A caller's OTLP endpoint must not make the child services export anywhere.
        patch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
        stack = devstack.build_stack()
        try:
            stack.start()
        except BaseException:
            stack.stop()
            raise
    try:
        yield E2EStack(stack)
    finally:
        stack.stop()
        # Every service must exit 0 on SIGTERM (Envoy and NATS may report the signal).
        bad = {
            c.name: c.process.returncode
            for c in stack.children
            if c.name not in ("envoy", "nats") and c.process is not None and c.process.returncode != 0
        }
        assert not bad, f"services exited badly on SIGTERM: {bad}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/ starts real processes: mark it e2e."""
    root = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(root):
            item.add_marker(pytest.mark.e2e)
