"""OpenTelemetry tracing: one TracerProvider per process, service name always set.

Spans go to the OTLP gRPC exporter when OTEL_EXPORTER_OTLP_ENDPOINT is set (the
exporter reads the endpoint and headers from the standard OTEL_* variables).
Without an exporter spans are still created, so trace ids reach logs and error
messages even when nothing collects them.
"""

from __future__ import annotations

import logging
import os
import threading

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_provider: TracerProvider | None = None


def configure_tracing(service_name: str, *, exporter: SpanExporter | None = None) -> TracerProvider:
    """Installs the global TracerProvider on first call; later calls only add `exporter`.

    OpenTelemetry refuses to replace a global provider, so a second call in the
    same process (several in-process services in one test run) reuses the first
    provider and its service name.
    """
    global _provider  # noqa: PLW0603 - the process-wide provider is global by OpenTelemetry's design
    with _lock:
        if _provider is None and isinstance(trace.get_tracer_provider(), TracerProvider):
            # Someone installed an SDK provider already (a test, a library): use it, don't fight it.
            _provider = trace.get_tracer_provider()
        if _provider is None:
            _provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
            if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

                _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            trace.set_tracer_provider(_provider)
        elif _provider.resource.attributes.get(SERVICE_NAME) != service_name:
            logger.debug("tracing already configured; keeping the first service name")
        if exporter is not None:
            # Synchronous export: tests read finished spans right after a call returns.
            _provider.add_span_processor(SimpleSpanProcessor(exporter))
        return _provider


def shutdown_tracing() -> None:
    """Flushes pending spans (BatchSpanProcessor) before the process exits."""
    with _lock:
        if _provider is not None:
            _provider.force_flush()
            _provider.shutdown()
