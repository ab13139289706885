"""W3C trace context carried in gRPC metadata and NATS headers (one trace end to end)."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

from opentelemetry import context, trace
from opentelemetry.propagate import extract as _extract
from opentelemetry.propagate import inject as _inject


def inject(carrier: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Write `traceparent`/`tracestate` of the current span into carrier (no-op without a span)."""
    _inject(carrier)
    return carrier


def extract(carrier: Mapping[str, str]) -> context.Context:
    """The context a carrier's `traceparent` describes, to start a child span in."""
    return _extract(dict(carrier))


def current_traceparent() -> str:
    carrier: dict[str, str] = {}
    _inject(carrier)
    return carrier.get("traceparent", "")


def current_trace_id() -> str:
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else ""
