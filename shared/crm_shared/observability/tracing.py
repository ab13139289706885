"""OpenTelemetry tracing: one TracerProvider per process, service name always set.

Spans go to the OTLP gRPC exporter when OTEL_EXPORTER_OTLP_ENDPOINT is set (the
exporter reads the endpoint and headers from the standard OTEL_* variables).
Without an exporter, spans are not recorded (recording one costs ~80 µs per RPC
for nothing) but still carry trace ids — the caller's, or new ones — so trace
ids reach logs, error messages and NATS headers even when nothing collects spans.
Once an exporter is attached, sampling follows OTEL_TRACES_SAMPLER (default:
parent-based, always on).
"""

from __future__ import annotations

import logging
import os
import threading

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, Sampler, SamplingResult, _get_from_env_or_default

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_provider: TracerProvider | None = None


class ExportAwareSampler(Sampler):
    """Drops every span until something exports them, then samples as configured."""

    def __init__(self) -> None:
        self._delegate: Sampler = ALWAYS_OFF

    def enable(self) -> None:
        self._delegate = _get_from_env_or_default()

    def should_sample(self, *args, **kwargs) -> SamplingResult:
        return self._delegate.should_sample(*args, **kwargs)

    def get_description(self) -> str:
        return f"ExportAware({self._delegate.get_description()})"


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
            _provider = TracerProvider(
                resource=Resource.create({SERVICE_NAME: service_name}), sampler=ExportAwareSampler()
            )
            if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

                _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
                _provider.sampler.enable()
            trace.set_tracer_provider(_provider)
        elif _provider.resource.attributes.get(SERVICE_NAME) != service_name:
            logger.debug("tracing already configured; keeping the first service name")
        if exporter is not None:
            # Synchronous export: tests read finished spans right after a call returns.
            _provider.add_span_processor(SimpleSpanProcessor(exporter))
            if isinstance(_provider.sampler, ExportAwareSampler):
                _provider.sampler.enable()
        return _provider


def shutdown_tracing() -> None:
    """Flushes pending spans (BatchSpanProcessor) before the process exits."""
    with _lock:
        if _provider is not None:
            _provider.force_flush()
            _provider.shutdown()
