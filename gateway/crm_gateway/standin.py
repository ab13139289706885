"""An in-memory stand-in for the customer service: gateway tests and `make run` before the real one.

It serves crm.customer.v1.CustomerService Create/Get/List (the rest answer UNIMPLEMENTED) and
grpc.health.v1, requires a bearer token like the real services (verified against the JWKS when
one is configured), and answers a create without display_name with INVALID_ARGUMENT carrying
google.rpc BadRequest + ErrorInfo details, so the gateway's error mapping can be exercised.

Run as a service: CRM_DEVSTACK_<NAME>_MODULE=crm_gateway.standin make run
(reads CRM_DEVSTACK_SERVICE_NAME, then CRM_<NAME>_GRPC_PORT and CRM_<NAME>_JWT_* like a real one).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from dataclasses import dataclass, field

import grpc
import jwt
from google.protobuf import timestamp_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from crm.customer.v1 import customer_pb2, customer_service_pb2, customer_service_pb2_grpc

ERROR_DOMAIN = "customer.crm.internal"


@dataclass
class TokenCheck:
    issuer: str = ""
    audience: str = ""
    jwks_file: str = ""

    def verify(self, token: str) -> dict:
        if not self.jwks_file:
            return {}
        with open(self.jwks_file) as handle:
            jwks = jwt.PyJWKSet.from_dict(json.load(handle))
        kid = jwt.get_unverified_header(token).get("kid")
        key = next(k for k in jwks.keys if k.key_id == kid)
        return jwt.decode(token, key.key, algorithms=["RS256"], issuer=self.issuer, audience=self.audience)


@dataclass
class StandInCustomerService(customer_service_pb2_grpc.CustomerServiceServicer):
    tokens: TokenCheck = field(default_factory=TokenCheck)
    customers: dict[str, customer_pb2.Customer] = field(default_factory=dict)
    # (method, metadata) of every call, newest last: tests assert what the gateway forwarded.
    calls: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    async def _authenticate(self, method: str, context: grpc.aio.ServicerContext) -> None:
        metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        self.calls.append((method, metadata))
        header = metadata.get("authorization", "")
        if not header.lower().startswith("bearer "):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing bearer token")
        try:
            self.tokens.verify(header[7:])
        except (jwt.InvalidTokenError, StopIteration, OSError) as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"invalid token: {type(exc).__name__}")

    async def CreateCustomer(self, request, context):
        await self._authenticate("CreateCustomer", context)
        if not request.customer.display_name:
            violation = error_details_pb2.BadRequest.FieldViolation(
                field="customer.display_name", description="display_name is required"
            )
            status = status_pb2.Status(
                code=code_pb2.INVALID_ARGUMENT, message="customer.display_name is required"
            )
            status.details.add().Pack(error_details_pb2.BadRequest(field_violations=[violation]))
            status.details.add().Pack(
                error_details_pb2.ErrorInfo(reason="DISPLAY_NAME_REQUIRED", domain=ERROR_DOMAIN)
            )
            await context.abort_with_status(rpc_status.to_status(status))
        customer = customer_pb2.Customer()
        customer.CopyFrom(request.customer)
        customer.name = f"customers/{uuid.uuid4()}"
        now = timestamp_pb2.Timestamp()
        now.GetCurrentTime()
        customer.create_time.CopyFrom(now)
        customer.update_time.CopyFrom(now)
        customer.etag = uuid.uuid4().hex[:16]
        self.customers[customer.name] = customer
        return customer

    async def GetCustomer(self, request, context):
        await self._authenticate("GetCustomer", context)
        customer = self.customers.get(request.name)
        if customer is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"{request.name} not found")
        return customer

    async def ListCustomers(self, request, context):
        await self._authenticate("ListCustomers", context)
        return customer_service_pb2.ListCustomersResponse(customers=list(self.customers.values()))


async def start_server(
    servicer: StandInCustomerService, *, host: str = "127.0.0.1", port: int = 0
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    server = grpc.aio.server()
    customer_service_pb2_grpc.add_CustomerServiceServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind {host}:{port}")
    await server.start()
    for name in ("", "crm.customer.v1.CustomerService"):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, bound, health_servicer


async def _serve() -> None:
    name = os.environ.get("CRM_DEVSTACK_SERVICE_NAME", "customer").upper()

    def env(key: str, default: str = "") -> str:
        return os.environ.get(f"CRM_{name}_{key}", default)

    servicer = StandInCustomerService(
        tokens=TokenCheck(
            issuer=env("JWT_ISSUER"), audience=env("JWT_AUDIENCE"), jwks_file=env("JWT_JWKS_FILE")
        )
    )
    server, port, health_servicer = await start_server(servicer, port=int(env("GRPC_PORT", "50051")))
    print(json.dumps({"msg": "stand-in serving", "service": name.lower(), "port": port}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await health_servicer.enter_graceful_shutdown()
    await server.stop(float(env("SHUTDOWN_GRACE_SECONDS", "5")))
    print(json.dumps({"msg": "stand-in stopped", "service": name.lower()}), flush=True)


def main() -> int:
    asyncio.run(_serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
