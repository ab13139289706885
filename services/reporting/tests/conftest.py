"""A real reporting service per test: in-process gRPC on port 0, a fresh SQLite or PostgreSQL
database, the session's real NATS JetStream, real JWTs."""

from __future__ import annotations

import grpc
import pytest
import pytest_asyncio
from reporting_testkit import reporting_settings

from crm_reporting.bootstrap import build
from crm_shared.runtime import start_service
from crm_shared.testing.fixtures_nats import NatsServer


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory):
    """A JetStream server per test module (overrides the session-wide one for reporting tests).

    The reporting service consumes every stream from its first message: on the session's shared
    server it would first have to project every event the other services' tests published
    earlier, and its read models would hold their data too.
    """
    server = NatsServer(tmp_path_factory.mktemp("reporting-nats"))
    server.start_sync()
    try:
        yield server
    finally:
        server.stop_sync()


@pytest_asyncio.fixture(loop_scope="session")
async def reporting_service(database_url, nats_server, jwt_keys):
    running = await start_service(reporting_settings(database_url, nats_server.url, jwt_keys), build)
    try:
        yield running
    finally:
        await running.stop(1)


@pytest_asyncio.fixture(loop_scope="session")
async def channel(reporting_service):
    async with grpc.aio.insecure_channel(reporting_service.address) as ch:
        yield ch


@pytest.fixture
def as_user(token_factory):
    """as_user("sales_rep", "rita", team="east") -> call metadata carrying that user's token."""

    def metadata(role: str = "admin", subject: str = "alice", team: str = "east"):
        return (("authorization", f"Bearer {token_factory(subject=subject, roles=(role,), team=team)}"),)

    return metadata
