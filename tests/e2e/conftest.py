"""Clients for the e2e tests: a gRPC channel through the gateway, and a factory for either wire format."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import grpc
import pytest
import pytest_asyncio
from e2e_client import Api, GrpcApi, RestApi


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def gateway_channel(e2e_stack) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(e2e_stack.gateway) as channel:
        yield channel


ApiFactory = Callable[..., Api]


@pytest.fixture(scope="session")
def make_api(e2e_stack, gateway_channel) -> Callable[..., Api]:
    """make_api("grpc" | "rest", token) -> a client for that wire format through the gateway."""

    def make(kind: str, token: str | None) -> Api:
        if kind == "grpc":
            return GrpcApi(gateway_channel, token)
        if kind == "rest":
            return RestApi(e2e_stack.gateway_port, token)
        raise ValueError(kind)

    return make


@pytest.fixture(params=["grpc", "rest"])
def wire(request) -> str:
    return request.param
