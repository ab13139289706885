"""Prometheus metrics: the RED metrics of every gRPC server, and the /metrics endpoint.

Metric objects are created on first use (not at import) so importing this module
registers nothing; every later call returns the same objects.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# RPC latencies: sub-millisecond cache hits up to slow exports.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class GrpcServerMetrics:
    handled: Counter
    handling_seconds: Histogram
    in_flight: Gauge


@functools.cache
def grpc_server_metrics(registry: CollectorRegistry = REGISTRY) -> GrpcServerMetrics:
    return GrpcServerMetrics(
        handled=Counter(
            "crm_grpc_server_handled",
            "RPCs completed on the server, by status code.",
            ["grpc_service", "grpc_method", "grpc_code"],
            registry=registry,
        ),
        handling_seconds=Histogram(
            "crm_grpc_server_handling_seconds",
            "Time from receiving an RPC to sending its status.",
            ["grpc_service", "grpc_method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        in_flight=Gauge("crm_grpc_server_in_flight", "RPCs being handled right now.", registry=registry),
    )


@dataclass
class MetricsServer:
    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return self.server.server_port

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_metrics_server(
    port: int, *, addr: str = "0.0.0.0", registry: CollectorRegistry = REGISTRY
) -> MetricsServer | None:
    """Serves /metrics on a daemon thread; port 0 means "no endpoint" (tests, one-off tools)."""
    if port == 0:
        return None
    server, thread = start_http_server(port, addr=addr, registry=registry)
    return MetricsServer(server, thread)
