"""One trace from the caller to the event: client span -> service SERVER span -> relay PRODUCER span,
and the `traceparent` on the NATS message carries the same trace id.

In-process (so an InMemorySpanExporter collects every span): the real customer service on a real
NATS, called through crm_shared.grpc.client.open_channel, which injects traceparent.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from crm.customer.v1 import customer_pb2 as pb
from crm.customer.v1 import customer_service_pb2 as rpc
from crm.customer.v1 import customer_service_pb2_grpc as rpc_grpc
from crm_customer.bootstrap import build
from crm_customer.config import CustomerSettings
from crm_shared.grpc.client import open_channel
from crm_shared.observability.tracing import configure_tracing
from crm_shared.pii.crypto import generate_key
from crm_shared.runtime import start_service
from crm_shared.testing.events import stream_envelopes
from crm_shared.testing.fixtures_nats import connect_nats

pytestmark = pytest.mark.asyncio(loop_scope="session")

CREATE = "crm.customer.v1.CustomerService/CreateCustomer"
PUBLISH = "publish crm.customer.customer.created"


async def _wait(predicate, within: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + within
    while True:
        found = await predicate()
        if found or time.monotonic() > deadline:
            assert found, f"{what} not seen within {within:.0f}s"
            return found
        await asyncio.sleep(0.05)


async def test_client_server_and_publish_spans_share_one_trace(
    nats_server, jwt_keys, token_factory, tmp_path
):
    exporter = InMemorySpanExporter()
    configure_tracing("e2e", exporter=exporter)
    settings = CustomerSettings(
        grpc_port=0,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'customer.db'}",
        nats_url=nats_server.url,
        jwt_jwks_file=jwt_keys.jwks_path,
        jwt_issuer=jwt_keys.issuer,
        jwt_audience=jwt_keys.audience,
        pii_keys=f"k1:{generate_key()}",
        blind_index_key=generate_key(),
        page_token_secret="e2e-page-secret",
        shutdown_grace_seconds=2,
    )
    running = await start_service(settings, build)
    nc = await connect_nats(nats_server.url)
    try:
        tracer = trace.get_tracer("e2e")
        token = token_factory(subject="tracer", roles=("admin",))
        async with open_channel(running.address, token_provider=lambda: token, default_timeout=15) as channel:
            with tracer.start_as_current_span("e2e caller") as caller:
                created = await rpc_grpc.CustomerServiceStub(channel).CreateCustomer(
                    rpc.CreateCustomerRequest(
                        customer=pb.Customer(
                            display_name="Traced Ltd",
                            email_addresses=[pb.EmailAddress(address=f"{uuid.uuid4().hex}@trace.example")],
                        )
                    )
                )
        trace_id = caller.get_span_context().trace_id

        async def published_message():
            for headers, envelope in await stream_envelopes(
                nc.jetstream(timeout=5), "CRM_CUSTOMER", "crm.customer.customer.created"
            ):
                if envelope.subject == created.name:
                    return headers
            return None

        headers = await _wait(published_message, what=f"CustomerCreated for {created.name}")

        def spans_in_trace():
            return [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]

        async def producer_finished():
            return [s for s in spans_in_trace() if s.name == PUBLISH and s.kind == SpanKind.PRODUCER]

        (producer,) = await _wait(producer_finished, what="the relay's PRODUCER span")
        spans = spans_in_trace()
        (client,) = [s for s in spans if s.kind == SpanKind.CLIENT and s.name == CREATE]
        (server,) = [s for s in spans if s.kind == SpanKind.SERVER and s.name == CREATE]

        assert client.parent is not None and client.parent.span_id == caller.get_span_context().span_id
        assert server.parent is not None and server.parent.span_id == client.context.span_id
        assert server.parent.is_remote  # it came over the wire in traceparent
        assert {client.context.trace_id, server.context.trace_id, producer.context.trace_id} == {trace_id}
        # The event is published on behalf of the request: its span descends from the server span.
        by_id = {s.context.span_id: s for s in spans}
        ancestor = producer.parent.span_id if producer.parent else None
        chain = []
        while ancestor in by_id and ancestor != server.context.span_id:
            chain.append(by_id[ancestor].name)
            ancestor = by_id[ancestor].parent.span_id if by_id[ancestor].parent else None
        assert ancestor == server.context.span_id, f"producer span not under the server span: {chain}"

        version, message_trace_id, _parent, _flags = headers["traceparent"].split("-")
        assert version == "00"
        assert int(message_trace_id, 16) == trace_id
    finally:
        await nc.close()
        await running.stop(1)
        exporter.clear()
        exporter.shutdown()  # the global provider keeps the processor; a shut exporter drops spans
