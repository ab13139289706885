"""JSON logs with call context, the /metrics endpoint, tracing setup and the client-side error reader."""

from __future__ import annotations

import io
import json
import logging
import urllib.request

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from crm_shared.errors import AlreadyExists, InvalidArgument, Violations
from crm_shared.grpc.status import STATUS_DETAILS_KEY, error_details, rpc_status_for
from crm_shared.observability.logging import configure_logging
from crm_shared.observability.metrics import grpc_server_metrics, start_metrics_server
from crm_shared.observability.tracing import configure_tracing
from crm_shared.principal import Principal, reset_principal, reset_request_id, set_principal, set_request_id


@pytest.fixture
def log_lines():
    stream = io.StringIO()
    handler = configure_logging("customer", "INFO", stream=stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logging.getLogger().removeHandler(handler)


def test_log_lines_are_json_with_trace_request_and_principal(log_lines):
    configure_tracing("observability-tests", exporter=InMemorySpanExporter())
    principal = set_principal(Principal(subject="alice", token="eyJsecret.token.value"))
    request_id = set_request_id("req-42")
    try:
        with trace.get_tracer("test").start_as_current_span("work") as span:
            logging.getLogger("crm.test").info("customer %s claimed", "customers/1", extra={"pool": "east"})
    finally:
        reset_request_id(request_id)
        reset_principal(principal)
    [entry] = [line for line in log_lines() if line["logger"] == "crm.test"]
    assert entry["message"] == "customer customers/1 claimed"
    assert (entry["level"], entry["service"], entry["pool"]) == ("INFO", "customer", "east")
    assert entry["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert entry["span_id"] == format(span.get_span_context().span_id, "016x")
    assert (entry["request_id"], entry["principal"]) == ("req-42", "alice")
    assert entry["time"].endswith("+00:00")


def test_tokens_never_reach_a_log_line(log_lines):
    logger = logging.getLogger("crm.test")
    logger.warning("forwarding Authorization: Bearer eyJhbGciOi.payload.sig", extra={"token": "eyJraw"})
    try:
        raise ValueError("bad header bearer eyJhbGciOi.payload.sig")
    except ValueError:
        logger.exception("failed")
    text = json.dumps(log_lines())
    assert "eyJ" not in text
    assert "[redacted]" in text


def test_the_metrics_endpoint_serves_the_grpc_metrics():
    assert start_metrics_server(0) is None
    metrics = grpc_server_metrics()
    metrics.handled.labels("crm.test.v1.Svc", "Do", "OK").inc()
    server = start_metrics_server(_free_port(), addr="127.0.0.1")
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5).read().decode()
    finally:
        server.close()
    assert (
        'crm_grpc_server_handled_total{grpc_code="OK",grpc_method="Do",grpc_service="crm.test.v1.Svc"}'
        in body
    )
    assert "crm_grpc_server_in_flight" in body
    assert "# TYPE crm_grpc_server_handling_seconds histogram" in body


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_configure_tracing_twice_keeps_one_provider_and_adds_exporters():
    first_exporter, second_exporter = InMemorySpanExporter(), InMemorySpanExporter()
    first = configure_tracing("one", exporter=first_exporter)
    second = configure_tracing("two", exporter=second_exporter)
    assert first is second is trace.get_tracer_provider()
    with trace.get_tracer("test").start_as_current_span("both"):
        pass
    assert [s.name for s in second_exporter.get_finished_spans()] == ["both"]
    assert "both" in [s.name for s in first_exporter.get_finished_spans()]


class FakeRpcError(grpc.RpcError):
    """A finished call as grpc hands it to clients (code, details, trailers)."""

    def __init__(self, status: status_pb2.Status) -> None:
        self._status = status

    def code(self) -> grpc.StatusCode:
        return next(code for code in grpc.StatusCode if code.value[0] == self._status.code)

    def details(self) -> str:
        return self._status.message

    def trailing_metadata(self):
        return ((STATUS_DETAILS_KEY, self._status.SerializeToString()),)


def test_rpc_status_carries_error_info_and_bad_request():
    violations = Violations()
    violations.add("customer.email_addresses[0].address", "must be a valid email address")
    violations.add("customer.display_name", "is required")
    with pytest.raises(InvalidArgument) as raised:
        violations.raise_if_any()
    status = rpc_status_for(raised.value, "customer")
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    info, bad_request = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
    assert status.details[0].Unpack(info) and status.details[1].Unpack(bad_request)
    assert (info.reason, info.domain) == ("INVALID_ARGUMENT", "customer")
    assert [v.field for v in bad_request.field_violations] == [
        "customer.email_addresses[0].address",
        "customer.display_name",
    ]
    details = error_details(FakeRpcError(status))
    assert details.field_violations["customer.display_name"] == "is required"


def test_error_details_round_trip_a_domain_error():
    error = AlreadyExists("duplicate", reason="CUSTOMER_ALREADY_EXISTS", metadata={"existing": "customers/1"})
    details = error_details(FakeRpcError(rpc_status_for(error, "customer")))
    assert details.code == grpc.StatusCode.ALREADY_EXISTS
    assert (details.message, details.reason, details.domain) == (
        "duplicate",
        "CUSTOMER_ALREADY_EXISTS",
        "customer",
    )
    assert details.metadata == {"existing": "customers/1"}
    assert details.field_violations == {}
