"""A CustomerService (and a streaming companion) that exercises the runtime, not the domain.

- GetCustomer returns a customer describing the call context (caller, request id, trace id).
- CreateCustomer raises AlreadyExists with metadata.
- DeleteCustomer raises a plain RuntimeError whose text must never reach the client.
- UpdateCustomer sleeps `customer.display_name` seconds ("0.5") before answering: drain tests.
- ListCustomers calls GetCustomer on `downstream_target` through open_channel, on the caller's behalf.
- crm.test.v1.Streams covers the three streaming handler kinds with validated request messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from crm.customer.v1 import customer_pb2, customer_service_pb2, customer_service_pb2_grpc
from crm_shared.errors import AlreadyExists, NotFound
from crm_shared.grpc.client import open_channel
from crm_shared.observability.propagation import current_trace_id
from crm_shared.principal import current_principal, current_request_id
from crm_shared.runtime import Infrastructure, ServiceParts
from crm_shared.settings import ServiceSettings

EXISTING_CUSTOMER = "customers/0190a1b2-0000-7000-8000-000000000001"
STREAMS_SERVICE = "crm.test.v1.Streams"


class RuntimeTestServicer(customer_service_pb2_grpc.CustomerServiceServicer):
    def __init__(self) -> None:
        self.downstream_target = ""
        self.started_slow_calls = 0
        self.slow_call_started = asyncio.Event()

    async def GetCustomer(self, request: Any, context: Any) -> customer_pb2.Customer:
        principal = current_principal()
        return customer_pb2.Customer(
            name=request.name,
            display_name="Acme",
            owner=principal.subject,
            team=principal.team,
            tags=sorted(principal.roles),
            industry=current_request_id(),
            source=current_trace_id(),
        )

    async def CreateCustomer(self, request: Any, context: Any) -> customer_pb2.Customer:
        raise AlreadyExists(
            "a customer with this email exists",
            reason="CUSTOMER_ALREADY_EXISTS",
            metadata={"existing": EXISTING_CUSTOMER},
        )

    async def DeleteCustomer(self, request: Any, context: Any) -> Any:
        raise RuntimeError("database password=hunter2 exploded")

    async def UpdateCustomer(self, request: Any, context: Any) -> customer_pb2.Customer:
        self.started_slow_calls += 1
        self.slow_call_started.set()
        await asyncio.sleep(float(request.customer.display_name or "0"))
        return request.customer

    async def ListCustomers(self, request: Any, context: Any) -> customer_service_pb2.ListCustomersResponse:
        async with open_channel(self.downstream_target, default_timeout=5) as channel:
            stub = customer_service_pb2_grpc.CustomerServiceStub(channel)
            customer = await stub.GetCustomer(customer_service_pb2.GetCustomerRequest(name=EXISTING_CUSTOMER))
        return customer_service_pb2.ListCustomersResponse(customers=[customer])


async def collect(requests: AsyncIterator[Any], context: Any) -> customer_service_pb2.ListCustomersResponse:
    names = [request.name async for request in requests]
    return customer_service_pb2.ListCustomersResponse(
        customers=[customer_pb2.Customer(name=n) for n in names]
    )


async def expand(request: Any, context: Any) -> AsyncIterator[customer_pb2.Customer]:
    for index in range(3):
        if request.name.endswith("dead") and index == 1:
            raise NotFound("gone mid-stream", reason="CUSTOMER_NOT_FOUND")
        yield customer_pb2.Customer(name=request.name, display_name=str(index))


async def echo(requests: AsyncIterator[Any], context: Any) -> None:
    # Coroutine style (context.write) on purpose: the other streaming kind the server supports.
    async for request in requests:
        await context.write(customer_pb2.Customer(name=request.name))


def streams_handler() -> grpc.GenericRpcHandler:
    request = customer_service_pb2.GetCustomerRequest
    return grpc.method_handlers_generic_handler(
        STREAMS_SERVICE,
        {
            "Collect": grpc.stream_unary_rpc_method_handler(
                collect,
                request_deserializer=request.FromString,
                response_serializer=customer_service_pb2.ListCustomersResponse.SerializeToString,
            ),
            "Expand": grpc.unary_stream_rpc_method_handler(
                expand,
                request_deserializer=request.FromString,
                response_serializer=customer_pb2.Customer.SerializeToString,
            ),
            "Echo": grpc.stream_stream_rpc_method_handler(
                echo,
                request_deserializer=request.FromString,
                response_serializer=customer_pb2.Customer.SerializeToString,
            ),
        },
    )


def add_streams(_servicer: Any, server: grpc.aio.Server) -> None:
    server.add_generic_rpc_handlers((streams_handler(),))


def build_for(servicer: RuntimeTestServicer):
    async def build(settings: ServiceSettings, infrastructure: Infrastructure) -> ServiceParts:
        return ServiceParts(
            servicers=[
                (customer_service_pb2_grpc.add_CustomerServiceServicer_to_server, servicer),
                (add_streams, None),
            ],
            service_names=["crm.customer.v1.CustomerService"],
        )

    return build


def policy_file_with_test_methods(directory) -> Any:
    """The shipped policy plus the test-only crm.test.v1.Streams methods (read on customers)."""
    from importlib import resources
    from pathlib import Path

    import yaml

    document = yaml.safe_load(resources.files("crm_shared.access").joinpath("policy.yaml").read_text())
    for method in ("Collect", "Expand", "Echo"):
        document["methods"][f"{STREAMS_SERVICE}/{method}"] = {"resource": "customers", "action": "read"}
    path = Path(directory) / "policy-with-test-methods.yaml"
    path.write_text(yaml.safe_dump(document))
    return path
