"""A real reporting service per test: in-process gRPC on port 0, a fresh SQLite or PostgreSQL
database, the session's real NATS JetStream, real JWTs."""

from __future__ import annotations

import grpc
import pytest
import pytest_asyncio
from reporting_testkit import reporting_settings

from crm_reporting.bootstrap import build
from crm_shared.runtime import start_service


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
