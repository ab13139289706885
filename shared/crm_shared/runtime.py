"""How every service starts and stops.

A service's composition root is a `BuildFn`: given settings and the shared
infrastructure (JWT verifier, clock, NATS), it returns its servicers, background
workers and closers. `start_service` wires them into a grpc.aio server with the
interceptor chain, health and reflection; `run_service` is the whole __main__.

Graceful stop, in order: health NOT_SERVING and new RPCs refused (UNAVAILABLE,
retryable) -> in-flight RPCs finish within the grace period -> server stopped
-> workers stopped in reverse start order -> closers -> NATS drained.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from crm_shared.access.policy import AccessPolicy
from crm_shared.auth.jwt import JwtVerifier
from crm_shared.clock import Clock, SystemClock
from crm_shared.grpc.interceptors import DrainGate, server_interceptors
from crm_shared.settings import ServiceSettings

if TYPE_CHECKING:
    import nats.aio.client
    from nats.js import JetStreamContext

logger = logging.getLogger(__name__)

HEALTH_SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
NATS_DRAIN_TIMEOUT_SECONDS = 10.0


class StartupError(RuntimeError):
    """The service cannot start with this configuration; the message says what to fix."""


class Worker(Protocol):
    """A background part: outbox relay, event consumer, timer loop."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Finish the current unit of work, flush, return."""
        ...


@dataclass
class ServiceParts:
    # (add_XServicer_to_server, servicer)
    servicers: list[tuple[Callable[[Any, grpc.aio.Server], None], Any]]
    # Fully-qualified names, e.g. "crm.customer.v1.CustomerService", for health and reflection.
    service_names: list[str]
    workers: list[Worker] = field(default_factory=list)
    # Run after workers stopped, e.g. engine.dispose.
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


@dataclass
class Infrastructure:
    settings: ServiceSettings
    verifier: JwtVerifier
    clock: Clock
    nats: nats.aio.client.Client | None
    js: JetStreamContext | None
    # The access policy the interceptors enforce; services use the same object for data scope.
    policy: AccessPolicy = field(default_factory=AccessPolicy.load)


BuildFn = Callable[[ServiceSettings, Infrastructure], Awaitable[ServiceParts]]


def verifier_from_settings(settings: ServiceSettings) -> JwtVerifier:
    if settings.jwt_jwks_file is not None:
        path, load = settings.jwt_jwks_file, JwtVerifier.from_jwks_file
    elif settings.jwt_public_key_file is not None:
        path, load = settings.jwt_public_key_file, JwtVerifier.from_pem_file
    else:
        raise StartupError(
            f"{settings.service_name}: no JWT verification key configured; set the service's "
            "JWT_JWKS_FILE or JWT_PUBLIC_KEY_FILE setting (make run generates dev keys)"
        )
    try:
        return load(path, issuer=settings.jwt_issuer, audience=settings.jwt_audience)
    except (OSError, ValueError) as error:
        raise StartupError(f"{settings.service_name}: cannot load JWT keys from {path}: {error}") from error


async def open_nats_connection(settings: ServiceSettings) -> nats.aio.client.Client:
    import nats

    async def log_disconnect() -> None:
        # Draining or closing on purpose also disconnects; only an unplanned loss is a warning.
        if client.is_draining or client.is_closed:
            logger.info("NATS connection closed")
        else:
            logger.warning("NATS disconnected; reconnecting")

    async def log_reconnect() -> None:
        logger.info("NATS reconnected")

    async def log_error(error: Exception) -> None:
        logger.warning("NATS error: %s", error)

    client = await nats.connect(
        settings.nats_url,
        name=settings.service_name,
        max_reconnect_attempts=-1,  # a service outlives NATS restarts
        disconnected_cb=log_disconnect,
        reconnected_cb=log_reconnect,
        error_cb=log_error,
    )
    return client


class RunningService:
    def __init__(
        self,
        *,
        settings: ServiceSettings,
        parts: ServiceParts,
        infrastructure: Infrastructure,
        server: grpc.aio.Server,
        health: HealthServicer,
        drain_gate: DrainGate,
        port: int,
    ) -> None:
        self.settings = settings
        self.parts = parts
        self.infrastructure = infrastructure
        self.server = server
        self.health = health
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self._drain_gate = drain_gate
        self._started_workers: list[Worker] = []
        self._stopping: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()

    async def _start_workers(self) -> None:
        for worker in self.parts.workers:
            await worker.start()
            self._started_workers.append(worker)

    async def _mark_serving(self) -> None:
        for name in ["", *self.parts.service_names, HEALTH_SERVICE_NAME]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float | None = None) -> None:
        """Graceful stop; concurrent or repeated calls wait for the first one."""
        if self._stopping is None:
            grace = self.settings.shutdown_grace_seconds if grace is None else grace
            self._stopping = asyncio.ensure_future(self._stop(grace))
        await asyncio.shield(self._stopping)

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def _stop(self, grace: float) -> None:
        name = self.settings.service_name
        deadline = time.monotonic() + grace
        logger.info("%s: draining (grace %.1fs, %d RPCs in flight)", name, grace, self._drain_gate.in_flight)
        try:
            await self.health.enter_graceful_shutdown()
            self._drain_gate.close()
            if not await self._drain_gate.wait_idle(grace):
                logger.warning("%s: grace period over; cancelling %d RPCs", name, self._drain_gate.in_flight)
            await self.server.stop(max(0.0, deadline - time.monotonic()))
            for worker in reversed(self._started_workers):
                await _log_failure(f"stopping worker {worker.name}", worker.stop())
            for close in reversed(self.parts.closers):
                await _log_failure("running a closer", close())
            await _close_nats(self.infrastructure.nats)
            logger.info("%s: stopped", name)
        finally:
            self._closed.set()


async def _log_failure(what: str, step: Awaitable[None]) -> None:
    # One part failing to stop must not keep the others from stopping.
    try:
        await step
    except Exception:
        logger.exception("failed %s", what)


async def _close_nats(client: nats.aio.client.Client | None) -> None:
    if client is None or client.is_closed:
        return
    try:
        await asyncio.wait_for(client.drain(), NATS_DRAIN_TIMEOUT_SECONDS)
    except Exception:
        logger.warning("NATS drain did not finish; closing", exc_info=True)
        # With NATS already gone, close() itself can fail (connection reset): the service has
        # stopped cleanly by now and must still exit 0.
        try:
            await client.close()
        except Exception:
            logger.warning("NATS close failed", exc_info=True)


async def start_service(
    settings: ServiceSettings,
    build: BuildFn,
    *,
    clock: Clock | None = None,
    verifier: JwtVerifier | None = None,
    connect_nats: bool = True,
) -> RunningService:
    verifier = verifier or verifier_from_settings(settings)
    nats_client = await open_nats_connection(settings) if connect_nats else None
    js = nats_client.jetstream() if nats_client is not None else None
    try:
        policy = AccessPolicy.load(settings.access_policy_file)
    except (OSError, ValueError) as error:
        await _close_nats(nats_client)
        raise StartupError(f"{settings.service_name}: cannot load the access policy: {error}") from error
    infrastructure = Infrastructure(settings, verifier, clock or SystemClock(), nats_client, js, policy)
    try:
        parts = await build(settings, infrastructure)
    except BaseException:
        await _close_nats(nats_client)
        raise

    drain_gate = DrainGate(settings.service_name)
    server = grpc.aio.server(
        interceptors=server_interceptors(
            domain=settings.service_name, verifier=verifier, drain_gate=drain_gate, policy=policy
        ),
        # Two processes must never share a port silently.
        options=[("grpc.so_reuseport", 0)],
    )
    for add_servicer, servicer in parts.servicers:
        add_servicer(servicer, server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        [*parts.service_names, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    # The overall status stays NOT_SERVING until the workers are up too.
    await health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)

    address = f"{settings.grpc_host}:{settings.grpc_port}"
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as error:
        port = 0
        cause: Exception | None = error
    else:
        cause = None
    running = RunningService(
        settings=settings,
        parts=parts,
        infrastructure=infrastructure,
        server=server,
        health=health,
        drain_gate=drain_gate,
        port=port,
    )
    if port == 0:
        await running.stop(0)
        raise StartupError(f"{settings.service_name}: cannot listen on {address}") from cause
    try:
        await server.start()
        await running._start_workers()
        await running._mark_serving()
    except BaseException:
        await running.stop(0)
        raise
    logger.info("%s: serving gRPC on %s:%d", settings.service_name, settings.grpc_host, port)
    return running


def run_service(settings: ServiceSettings, build: BuildFn) -> None:
    """The __main__ of every service: telemetry, serve, stop gracefully on SIGTERM/SIGINT."""
    from crm_shared.observability.logging import configure_logging
    from crm_shared.observability.metrics import start_metrics_server
    from crm_shared.observability.tracing import configure_tracing, shutdown_tracing

    configure_logging(settings.service_name, settings.log_level, json=settings.log_json)
    configure_tracing(settings.service_name)
    metrics_server = start_metrics_server(settings.metrics_port)
    try:
        asyncio.run(_serve_until_signalled(settings, build))
        # The loop's signal handlers are gone with it: a late second SIGTERM must not kill the
        # process (-15) while it flushes telemetry and exits.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except StartupError as error:
        logger.error("%s", error)
        raise SystemExit(2) from None
    finally:
        if metrics_server is not None:
            metrics_server.close()
        shutdown_tracing()


async def _serve_until_signalled(settings: ServiceSettings, build: BuildFn) -> None:
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_requested.set)
    running = await start_service(settings, build)
    await stop_requested.wait()
    logger.info("%s: stop requested", settings.service_name)
    # A second signal while draining does nothing: the grace period bounds the wait anyway.
    await running.stop(settings.shutdown_grace_seconds)
