"""Deny by default at the RPC boundary: the access policy must name an RPC, and the caller's
roles must have some scope for it, before any handler runs."""

import grpc
import pytest
from grpc_test_service import EXISTING_CUSTOMER, STREAMS_SERVICE, RuntimeTestServicer, build_for

from crm.customer.v1 import customer_service_pb2, customer_service_pb2_grpc
from crm_shared.grpc.status import error_details
from crm_shared.runtime import start_service
from crm_shared.settings import ServiceSettings

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
async def channel(verifier):
    # The shipped policy: it does not name the test-only crm.test.v1.Streams methods.
    settings = ServiceSettings(service_name="policy-test", grpc_port=0, shutdown_grace_seconds=1)
    running = await start_service(
        settings, build_for(RuntimeTestServicer()), verifier=verifier, connect_nats=False
    )
    try:
        async with grpc.aio.insecure_channel(running.address) as ch:
            yield ch
    finally:
        await running.stop(1)


async def test_rpc_missing_from_the_policy_is_denied_even_for_admins(channel, token_factory):
    expand = channel.unary_stream(
        f"/{STREAMS_SERVICE}/Expand",
        request_serializer=customer_service_pb2.GetCustomerRequest.SerializeToString,
        response_deserializer=lambda b: b,
    )
    call = expand(
        customer_service_pb2.GetCustomerRequest(name=EXISTING_CUSTOMER),
        metadata=(("authorization", f"Bearer {token_factory(roles=('admin',))}"),),
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:
            pass
    details = error_details(caught.value)
    assert (details.code, details.reason) == (grpc.StatusCode.PERMISSION_DENIED, "METHOD_NOT_IN_POLICY")


async def test_role_without_scope_is_denied_before_the_handler(channel, token_factory):
    stub = customer_service_pb2_grpc.CustomerServiceStub(channel)
    token = token_factory(roles=("analyst",))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetCustomer(
            customer_service_pb2.GetCustomerRequest(name=EXISTING_CUSTOMER),
            metadata=(("authorization", f"Bearer {token}"),),
        )
    details = error_details(caught.value)
    assert (details.code, details.reason) == (grpc.StatusCode.PERMISSION_DENIED, "ACTION_NOT_ALLOWED")
    assert details.metadata == {"resource": "customers", "action": "read"}


async def test_role_with_scope_reaches_the_handler(channel, token_factory):
    stub = customer_service_pb2_grpc.CustomerServiceStub(channel)
    token = token_factory(roles=("sales_rep",))
    customer = await stub.GetCustomer(
        customer_service_pb2.GetCustomerRequest(name=EXISTING_CUSTOMER),
        metadata=(("authorization", f"Bearer {token}"),),
    )
    assert customer.name == EXISTING_CUSTOMER
