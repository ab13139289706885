"""The gRPC runtime end to end: a real grpc.aio server from start_service, called over a real channel."""

from __future__ import annotations

import asyncio
import re
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_test_service import (
    EXISTING_CUSTOMER,
    STREAMS_SERVICE,
    RuntimeTestServicer,
    build_for,
    policy_file_with_test_methods,
)
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY

from crm.customer.v1 import customer_pb2, customer_service_pb2, customer_service_pb2_grpc
from crm_shared.grpc.client import open_channel
from crm_shared.grpc.status import error_details
from crm_shared.observability.tracing import configure_tracing
from crm_shared.principal import Principal, reset_principal, reset_request_id, set_principal, set_request_id
from crm_shared.runtime import start_service
from crm_shared.settings import ServiceSettings

CUSTOMER = "customers/0190a1b2-0000-7000-8000-0000000000aa"
DOMAIN = "customer-test"


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    configure_tracing("runtime-tests", exporter=exporter)
    return exporter


@pytest.fixture(scope="module")
async def service(verifier, spans, tmp_path_factory):
    servicer = RuntimeTestServicer()
    settings = ServiceSettings(
        service_name=DOMAIN,
        grpc_port=0,
        shutdown_grace_seconds=1,
        access_policy_file=policy_file_with_test_methods(tmp_path_factory.mktemp("policy")),
    )
    running = await start_service(settings, build_for(servicer), verifier=verifier, connect_nats=False)
    servicer.downstream_target = running.address
    yield running
    await running.stop(grace=1)


@pytest.fixture(scope="module")
async def channel(service):
    async with grpc.aio.insecure_channel(service.address) as channel:
        yield channel


@pytest.fixture
def stub(channel) -> customer_service_pb2_grpc.CustomerServiceStub:
    return customer_service_pb2_grpc.CustomerServiceStub(channel)


@pytest.fixture
def auth(token_factory) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token_factory()}"),)


def get_request(name: str = CUSTOMER) -> customer_service_pb2.GetCustomerRequest:
    return customer_service_pb2.GetCustomerRequest(name=name)


# ---------------------------------------------------------------- authentication


async def test_a_valid_token_reaches_the_handler_as_the_principal(stub, token_factory):
    token = token_factory(subject="bob", roles=("sales_rep", "support"), team="west")
    customer = await stub.GetCustomer(get_request(), metadata=(("authorization", f"Bearer {token}"),))
    assert (customer.owner, customer.team, list(customer.tags)) == ("bob", "west", ["sales_rep", "support"])


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "TOKEN_MISSING"),
        ("Basic dXNlcjpwYXNz", "TOKEN_MALFORMED"),
        ("Bearer not-a-jwt", "TOKEN_MALFORMED"),
        ("Bearer", "TOKEN_MALFORMED"),
    ],
)
async def test_missing_or_garbage_credentials_are_unauthenticated(stub, authorization, reason):
    metadata = (("authorization", authorization),) if authorization is not None else ()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetCustomer(get_request(), metadata=metadata)
    details = error_details(raised.value)
    assert details.code == grpc.StatusCode.UNAUTHENTICATED
    assert (details.reason, details.domain) == (reason, DOMAIN)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"ttl": -120}, "TOKEN_EXPIRED"),
        ({"iss": "https://evil.example"}, "TOKEN_WRONG_ISSUER"),
        ({"aud": "payments"}, "TOKEN_WRONG_AUDIENCE"),
        ({"subject": None}, "TOKEN_NO_SUBJECT"),
    ],
)
async def test_rejected_tokens_name_the_reason(stub, token_factory, overrides, reason):
    token = token_factory(**overrides)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetCustomer(get_request(), metadata=(("authorization", f"Bearer {token}"),))
    details = error_details(raised.value)
    assert (details.code, details.reason) == (grpc.StatusCode.UNAUTHENTICATED, reason)


async def test_a_token_signed_by_another_key_is_a_bad_signature(stub, token_factory):
    from crm_shared.testing.fixtures_auth import generate_rsa_private_pem

    token = token_factory(signing_key=generate_rsa_private_pem())
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetCustomer(get_request(), metadata=(("authorization", f"Bearer {token}"),))
    assert error_details(raised.value).reason == "TOKEN_BAD_SIGNATURE"


async def test_health_answers_without_a_token(channel):
    health = health_pb2_grpc.HealthStub(channel)
    for service_name in ("", "crm.customer.v1.CustomerService"):
        response = await health.Check(health_pb2.HealthCheckRequest(service=service_name))
        assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_services_without_a_token(channel):
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def one_request():
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    responses = [response async for response in reflection.ServerReflectionInfo(one_request())]
    names = {service.name for service in responses[0].list_services_response.service}
    assert {"crm.customer.v1.CustomerService", "grpc.health.v1.Health"} <= names


# ---------------------------------------------------------------- validation and errors


async def test_an_invalid_request_names_every_bad_field(stub, auth):
    request = customer_service_pb2.CreateCustomerRequest(
        customer=customer_pb2.Customer(
            display_name="Acme",
            email_addresses=[
                customer_pb2.EmailAddress(address="ok@example.com"),
                customer_pb2.EmailAddress(address="not-an-email"),
            ],
            tags=["vip", "vip"],
        ),
        request_id="not-a-uuid",
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.CreateCustomer(request, metadata=auth)
    details = error_details(raised.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.domain == DOMAIN
    assert set(details.field_violations) == {
        "customer.email_addresses[1].address",
        "customer.tags",
        "request_id",
    }
    assert "email" in details.field_violations["customer.email_addresses[1].address"]


async def test_a_missing_required_message_is_a_field_violation(stub, auth):
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.CreateCustomer(customer_service_pb2.CreateCustomerRequest(), metadata=auth)
    assert error_details(raised.value).field_violations == {"customer": "value is required"}


async def test_validation_runs_after_authentication(stub):
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetCustomer(get_request("bogus"))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_domain_error_keeps_its_code_reason_and_metadata(stub, auth):
    request = customer_service_pb2.CreateCustomerRequest(customer=customer_pb2.Customer(display_name="Acme"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.CreateCustomer(request, metadata=auth)
    details = error_details(raised.value)
    assert details.code == grpc.StatusCode.ALREADY_EXISTS
    assert details.message == "a customer with this email exists"
    assert (details.reason, details.domain) == ("CUSTOMER_ALREADY_EXISTS", DOMAIN)
    assert details.metadata == {"existing": EXISTING_CUSTOMER}


async def test_an_unexpected_exception_is_internal_without_its_text(stub, auth, spans):
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.DeleteCustomer(customer_service_pb2.DeleteCustomerRequest(name=CUSTOMER), metadata=auth)
    details = error_details(raised.value)
    assert details.code == grpc.StatusCode.INTERNAL
    assert re.fullmatch(r"internal error; trace id [0-9a-f]{32}", details.message)
    trailer_text = repr(raised.value.trailing_metadata()) + details.message
    for leaked in ("hunter2", "RuntimeError", "Traceback", "exploded"):
        assert leaked not in trailer_text
    trace_id = details.message.rsplit(" ", 1)[1]
    failed = [s for s in spans.get_finished_spans() if format(s.context.trace_id, "032x") == trace_id]
    assert failed and failed[0].attributes["rpc.grpc.status_code"] == grpc.StatusCode.INTERNAL.value[0]


async def test_the_unexpected_exception_is_logged_with_traceback_and_trace_id(stub, auth, caplog):
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.DeleteCustomer(customer_service_pb2.DeleteCustomerRequest(name=CUSTOMER), metadata=auth)
    trace_id = error_details(raised.value).message.rsplit(" ", 1)[1]
    records = [r for r in caplog.records if r.name == "crm_shared.grpc.interceptors" and r.exc_info]
    assert records and trace_id in records[-1].getMessage()
    assert "hunter2" in str(records[-1].exc_info[1])


# ---------------------------------------------------------------- streaming handler kinds


async def test_client_streams_validate_every_message(channel, auth):
    collect = channel.stream_unary(
        f"/{STREAMS_SERVICE}/Collect",
        request_serializer=customer_service_pb2.GetCustomerRequest.SerializeToString,
        response_deserializer=customer_service_pb2.ListCustomersResponse.FromString,
    )

    async def requests(*names):
        for name in names:
            yield get_request(name)

    response = await collect(requests(CUSTOMER, EXISTING_CUSTOMER), metadata=auth)
    assert [c.name for c in response.customers] == [CUSTOMER, EXISTING_CUSTOMER]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await collect(requests(CUSTOMER, "bogus"), metadata=auth)
    details = error_details(raised.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert list(details.field_violations) == ["name"]


async def test_server_streams_run_through_the_chain(channel, auth):
    expand = channel.unary_stream(
        f"/{STREAMS_SERVICE}/Expand",
        request_serializer=customer_service_pb2.GetCustomerRequest.SerializeToString,
        response_deserializer=customer_pb2.Customer.FromString,
    )
    assert [c.display_name async for c in expand(get_request(), metadata=auth)] == ["0", "1", "2"]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for _ in expand(get_request(), metadata=()):
            pass
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    dead = get_request("customers/0190a1b2-0000-7000-8000-00000000dead")
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for customer in expand(dead, metadata=auth):
            received.append(customer)
    assert len(received) == 1
    assert (error_details(raised.value).code, error_details(raised.value).reason) == (
        grpc.StatusCode.NOT_FOUND,
        "CUSTOMER_NOT_FOUND",
    )


async def test_bidirectional_streams_run_through_the_chain(channel, auth):
    echo = channel.stream_stream(
        f"/{STREAMS_SERVICE}/Echo",
        request_serializer=customer_service_pb2.GetCustomerRequest.SerializeToString,
        response_deserializer=customer_pb2.Customer.FromString,
    )

    async def requests():
        yield get_request(CUSTOMER)
        yield get_request(EXISTING_CUSTOMER)

    assert [c.name async for c in echo(requests(), metadata=auth)] == [CUSTOMER, EXISTING_CUSTOMER]


# ---------------------------------------------------------------- request id, metrics, traces


async def test_the_request_id_is_echoed_and_visible_to_the_handler(stub, auth):
    call = stub.GetCustomer(get_request(), metadata=(*auth, ("x-request-id", "req-123")))
    customer = await call
    assert customer.industry == "req-123"
    assert dict(await call.trailing_metadata())["x-request-id"] == "req-123"


async def test_a_request_id_is_made_when_the_caller_sends_none(stub, auth):
    call = stub.GetCustomer(get_request(), metadata=auth)
    customer = await call
    echoed = dict(await call.trailing_metadata())["x-request-id"]
    assert customer.industry == echoed
    assert len(echoed) == 32


def handled(method: str, code: str) -> float:
    labels = {"grpc_service": "crm.customer.v1.CustomerService", "grpc_method": method, "grpc_code": code}
    return REGISTRY.get_sample_value("crm_grpc_server_handled_total", labels) or 0.0


async def test_metrics_count_each_call_by_code(stub, auth):
    ok_before, unauthenticated_before = (
        handled("GetCustomer", "OK"),
        handled("GetCustomer", "UNAUTHENTICATED"),
    )
    exists_before = handled("CreateCustomer", "ALREADY_EXISTS")
    await stub.GetCustomer(get_request(), metadata=auth)
    await stub.GetCustomer(get_request(), metadata=auth)
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.GetCustomer(get_request())
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.CreateCustomer(
            customer_service_pb2.CreateCustomerRequest(customer=customer_pb2.Customer()), metadata=auth
        )
    assert handled("GetCustomer", "OK") == ok_before + 2
    assert handled("GetCustomer", "UNAUTHENTICATED") == unauthenticated_before + 1
    assert handled("CreateCustomer", "ALREADY_EXISTS") == exists_before + 1
    count = REGISTRY.get_sample_value(
        "crm_grpc_server_handling_seconds_count",
        {"grpc_service": "crm.customer.v1.CustomerService", "grpc_method": "GetCustomer"},
    )
    assert count >= 3
    assert REGISTRY.get_sample_value("crm_grpc_server_in_flight") == 0


async def test_open_channel_propagates_trace_token_and_request_id(service, spans, token_factory):
    tracer = trace.get_tracer("test")
    token = token_factory(subject="carol", team="north")
    async with open_channel(service.address, token_provider=lambda: token, default_timeout=5) as channel:
        stub = customer_service_pb2_grpc.CustomerServiceStub(channel)
        request_id = set_request_id("req-trace-1")
        try:
            with tracer.start_as_current_span("caller") as caller:
                customer = await stub.GetCustomer(get_request())
        finally:
            reset_request_id(request_id)
    trace_id = format(caller.get_span_context().trace_id, "032x")
    assert (customer.owner, customer.industry, customer.source) == ("carol", "req-trace-1", trace_id)
    in_trace = [
        s for s in spans.get_finished_spans() if s.context.trace_id == caller.get_span_context().trace_id
    ]
    kinds = {span.kind: span for span in in_trace}
    assert {SpanKind.CLIENT, SpanKind.SERVER} <= set(kinds)
    server_span, client_span = kinds[SpanKind.SERVER], kinds[SpanKind.CLIENT]
    assert server_span.parent.span_id == client_span.context.span_id
    assert server_span.name == "crm.customer.v1.CustomerService/GetCustomer"
    assert server_span.attributes["rpc.system"] == "grpc"
    assert server_span.attributes["rpc.method"] == "GetCustomer"
    assert server_span.attributes["rpc.grpc.status_code"] == 0


async def test_calls_made_inside_a_handler_carry_the_callers_token(stub, token_factory, spans):
    token = token_factory(subject="dave", roles=("sales_manager",), team="south")
    call = stub.ListCustomers(
        customer_service_pb2.ListCustomersRequest(),
        metadata=(("authorization", f"Bearer {token}"), ("x-request-id", "req-nested")),
    )
    response = await call
    nested = response.customers[0]
    assert (nested.owner, nested.team, nested.industry) == ("dave", "south", "req-nested")
    trace_id = int(nested.source, 16)
    server_spans = [
        s for s in spans.get_finished_spans() if s.context.trace_id == trace_id and s.kind == SpanKind.SERVER
    ]
    assert sorted(s.name.rsplit("/", 1)[1] for s in server_spans) == ["GetCustomer", "ListCustomers"]


async def test_open_channel_uses_the_current_principals_token(service, token_factory):
    token = token_factory(subject="erin")
    principal = set_principal(Principal(subject="erin", token=token))
    try:
        async with open_channel(service.address) as channel:
            stub = customer_service_pb2_grpc.CustomerServiceStub(channel)
            assert (await stub.GetCustomer(get_request())).owner == "erin"
    finally:
        reset_principal(principal)


async def test_open_channel_applies_the_default_deadline(service, auth):
    async with open_channel(service.address, token_provider=lambda: None, default_timeout=0.2) as channel:
        stub = customer_service_pb2_grpc.CustomerServiceStub(channel)
        slow = customer_service_pb2.UpdateCustomerRequest(
            customer=customer_pb2.Customer(name=CUSTOMER, display_name="2"), update_mask={"paths": ["tags"]}
        )
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.UpdateCustomer(slow, metadata=auth)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_unknown_methods_are_unimplemented(channel, auth):
    method = channel.unary_unary(f"/crm.nothing.v1.Nope/{uuid.uuid4().hex}")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await method(b"", metadata=auth)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_open_channel_traces_streaming_calls(service, spans, token_factory):
    token = token_factory(subject="frank")
    async with open_channel(service.address, token_provider=lambda: token) as channel:
        expand = channel.unary_stream(
            f"/{STREAMS_SERVICE}/Expand",
            request_serializer=customer_service_pb2.GetCustomerRequest.SerializeToString,
            response_deserializer=customer_pb2.Customer.FromString,
        )
        with trace.get_tracer("test").start_as_current_span("caller") as caller:
            names = [customer.display_name async for customer in expand(get_request())]
        assert names == ["0", "1", "2"]
        trace_id = caller.get_span_context().trace_id
        for _ in range(50):  # the client span ends from the call's done callback
            kinds = {s.kind for s in spans.get_finished_spans() if s.context.trace_id == trace_id}
            if {SpanKind.CLIENT, SpanKind.SERVER} <= kinds:
                break
            await asyncio.sleep(0.01)
        assert {SpanKind.CLIENT, SpanKind.SERVER} <= kinds


async def test_open_channel_authenticates_client_and_bidi_streams(service, token_factory):
    token = token_factory(subject="grace")

    async def requests():
        yield get_request(CUSTOMER)
        yield get_request(EXISTING_CUSTOMER)

    async with open_channel(service.address, token_provider=lambda: token) as channel:
        collect = channel.stream_unary(
            f"/{STREAMS_SERVICE}/Collect",
            request_serializer=customer_service_pb2.GetCustomerRequest.SerializeToString,
            response_deserializer=customer_service_pb2.ListCustomersResponse.FromString,
        )
        echo = channel.stream_stream(
            f"/{STREAMS_SERVICE}/Echo",
            request_serializer=customer_service_pb2.GetCustomerRequest.SerializeToString,
            response_deserializer=customer_pb2.Customer.FromString,
        )
        collected = await collect(requests())
        echoed = [customer.name async for customer in echo(requests())]
    assert [c.name for c in collected.customers] == echoed == [CUSTOMER, EXISTING_CUSTOMER]
