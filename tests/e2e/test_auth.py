"""Authentication at the edge (Envoy jwt_authn) and again in the service (services re-verify).

No token, a garbage token, an expired one or one from another issuer is UNAUTHENTICATED over gRPC
and 401 over REST; a valid token gets through. Calling the service port directly, bypassing
Envoy, without a valid token is UNAUTHENTICATED too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from e2e_client import customer_json, expect_error
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crm.customer.v1 import customer_service_pb2 as rpc
from crm.customer.v1 import customer_service_pb2_grpc as rpc_grpc
from crm_shared.grpc.status import error_details

pytestmark = pytest.mark.asyncio(loop_scope="session")

BAD_TOKENS = ["none", "garbage", "expired", "wrong issuer"]


def bad_token(e2e_stack, kind: str) -> str | None:
    return {
        "none": None,
        "garbage": "not.a.jwt",
        "expired": e2e_stack.expired_token(),
        "wrong issuer": e2e_stack.token(issuer="https://evil.example"),
    }[kind]


@pytest.mark.parametrize("kind", BAD_TOKENS)
async def test_bad_or_missing_token_is_refused_at_the_gateway(e2e_stack, make_api, wire, kind):
    api = make_api(wire, bad_token(e2e_stack, kind))
    for call in (api.list_customers(), api.create_customer(customer_json("Refused"))):
        error = await expect_error(call, grpc.StatusCode.UNAUTHENTICATED)
        assert error.domain == "", error  # Envoy answered: the service's ErrorInfo is absent


async def test_a_valid_token_is_accepted_on_both_wires(e2e_stack, make_api, wire):
    api = make_api(wire, e2e_stack.token("sales_rep", "bob", "east"))
    created = await api.create_customer(customer_json("Accepted"))
    assert created["owner"] == "bob"
    assert (await api.get_customer(created["name"]))["name"] == created["name"]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def direct_channel(e2e_stack) -> AsyncIterator[grpc.aio.Channel]:
    """Straight to the customer service's own port: no Envoy in between."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{e2e_stack.customer_port}") as channel:
        yield channel


@pytest.mark.parametrize("kind", BAD_TOKENS)
async def test_the_service_itself_rejects_calls_that_bypass_the_gateway(e2e_stack, direct_channel, kind):
    token = bad_token(e2e_stack, kind)
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    stub = rpc_grpc.CustomerServiceStub(direct_channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListCustomers(rpc.ListCustomersRequest(), metadata=metadata, timeout=10)
    details = error_details(caught.value)
    assert details.code == grpc.StatusCode.UNAUTHENTICATED, details
    assert details.domain == "customer"  # answered by the service, not by Envoy
    if kind == "none":
        assert details.reason == "TOKEN_MISSING"


async def test_the_service_accepts_a_valid_token_directly_and_health_needs_none(e2e_stack, direct_channel):
    stub = rpc_grpc.CustomerServiceStub(direct_channel)
    metadata = (("authorization", f"Bearer {e2e_stack.token()}"),)
    reply = await stub.ListCustomers(rpc.ListCustomersRequest(page_size=1), metadata=metadata, timeout=10)
    assert len(reply.customers) <= 1
    health = await health_pb2_grpc.HealthStub(direct_channel).Check(
        health_pb2.HealthCheckRequest(service="crm.customer.v1.CustomerService"), timeout=10
    )
    assert health.status == health_pb2.HealthCheckResponse.SERVING
