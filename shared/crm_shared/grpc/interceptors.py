"""Server interceptors every service runs, outermost first:

tracing -> request id -> RED metrics -> drain gate -> authentication -> validation -> error mapping

Design notes (why it looks like this):
- Each interceptor wraps the method's behaviour once per method and caches the
  wrapped handler, so a call pays only for the wrappers' own work, not for
  rebuilding handlers. Wrappers read per-call data from the servicer context.
- Response-streaming behaviours written as async generators are turned into
  coroutines that `context.write` each message, so every wrapper is a plain
  `async def (request, context)` whatever the handler kind.
- Auth and validation sit outside error mapping, so they abort themselves with
  the same google.rpc.Status the error mapper would produce.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, NoReturn

import grpc
import protovalidate
from grpc_status import rpc_status
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from crm_shared.access.policy import AccessPolicy
from crm_shared.auth.jwt import JwtVerifier
from crm_shared.errors import (
    DomainError,
    FieldViolation,
    InvalidArgument,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from crm_shared.grpc.status import build_rpc_status, grpc_status_for
from crm_shared.observability.metrics import GrpcServerMetrics, grpc_server_metrics
from crm_shared.observability.propagation import current_trace_id, extract
from crm_shared.principal import (
    current_principal,
    current_request_id,
    reset_principal,
    reset_request_id,
    set_principal,
    set_request_id,
)

logger = logging.getLogger(__name__)

Behavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]

REQUEST_ID_KEY = "x-request-id"
AUTHORIZATION_KEY = "authorization"
# Infrastructure endpoints probes and tools call without credentials.
UNAUTHENTICATED_METHOD_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
_MAX_REQUEST_ID_LENGTH = 128
# OpenTelemetry semantic conventions: these codes mark a server span as failed
# (the rest are the caller's fault and leave the span unset).
_SERVER_ERROR_CODES = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


class MethodName:
    """ "/crm.customer.v1.CustomerService/GetCustomer" split into service and method."""

    __slots__ = ("full", "method", "service")

    def __init__(self, full: str) -> None:
        self.full = full
        service, _, method = full.lstrip("/").partition("/")
        self.service = service
        self.method = method

    @property
    def is_infrastructure(self) -> bool:
        return self.full.startswith(UNAUTHENTICATED_METHOD_PREFIXES)


# ---------------------------------------------------------------- plumbing


def metadata_value(context: grpc.aio.ServicerContext, key: str) -> str | None:
    for item_key, value in context.invocation_metadata() or ():
        if item_key == key:
            return value
    return None


def outcome_code(context: grpc.aio.ServicerContext, error: BaseException | None) -> grpc.StatusCode:
    """The status the client will see, read after the behaviour returned or raised."""
    if isinstance(error, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    code = context.code()
    if code is not None:
        # grpc.aio reports the code it will send (abort / set_code); the enum or its int.
        if isinstance(code, grpc.StatusCode):
            return code
        return _STATUS_CODE_BY_VALUE.get(code, grpc.StatusCode.UNKNOWN)
    return grpc.StatusCode.UNKNOWN if error is not None else grpc.StatusCode.OK


_STATUS_CODE_BY_VALUE = {code.value[0]: code for code in grpc.StatusCode}


def _as_coroutine(behavior: Callable[..., Any], name: str) -> Behavior:
    if inspect.isasyncgenfunction(behavior):

        async def write_each(request: Any, context: grpc.aio.ServicerContext) -> None:
            responses = behavior(request, context)
            try:
                async for response in responses:
                    await context.write(response)
            finally:
                await responses.aclose()

        return write_each
    if inspect.iscoroutinefunction(behavior):
        return behavior
    raise TypeError(f"{name}: CRM servicers must be async (async def or async generator)")


def wrap_handler(
    handler: grpc.RpcMethodHandler, method: MethodName, wrap: Callable[[Behavior], Behavior]
) -> grpc.RpcMethodHandler:
    """The same handler with its behaviour passed through `wrap` (all four kinds)."""
    if handler.request_streaming and handler.response_streaming:
        return handler._replace(stream_stream=wrap(_as_coroutine(handler.stream_stream, method.full)))
    if handler.request_streaming:
        return handler._replace(stream_unary=wrap(_as_coroutine(handler.stream_unary, method.full)))
    if handler.response_streaming:
        return handler._replace(unary_stream=wrap(_as_coroutine(handler.unary_stream, method.full)))
    return handler._replace(unary_unary=wrap(_as_coroutine(handler.unary_unary, method.full)))


class WrappingInterceptor(grpc.aio.ServerInterceptor):
    """Base: wraps each method's behaviour once and reuses the wrapped handler."""

    def __init__(self) -> None:
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        wrapped = self._handlers.get(method)
        if wrapped is None:
            handler = await continuation(handler_call_details)
            if handler is None:  # unknown method: not cached, so random names cannot grow the cache
                return None
            name = MethodName(method)
            wrapped = self.wrap(handler, name) if self.applies_to(name) else handler
            self._handlers[method] = wrapped
        return wrapped

    def applies_to(self, method: MethodName) -> bool:
        return True

    def wrap(self, handler: grpc.RpcMethodHandler, method: MethodName) -> grpc.RpcMethodHandler:
        return wrap_handler(handler, method, lambda behavior: self.wrap_behavior(behavior, method))

    def wrap_behavior(self, behavior: Behavior, method: MethodName) -> Behavior:
        raise TypeError(f"{type(self).__name__} must override wrap() or wrap_behavior()")


def _with_request_id(status: grpc.Status) -> grpc.Status:
    """The status plus x-request-id in its trailers (an abort replaces trailers set earlier)."""
    request_id = current_request_id()
    if not request_id:
        return status
    return AbortStatus(status.code, status.details, (*status.trailing_metadata, (REQUEST_ID_KEY, request_id)))


_StatusFields = collections.namedtuple("_StatusFields", ("code", "details", "trailing_metadata"))


class AbortStatus(_StatusFields, grpc.Status):
    """A concrete grpc.Status (the grpc package only defines the interface)."""


async def abort_with_error(context: grpc.aio.ServicerContext, error: DomainError, domain: str) -> NoReturn:
    await context.abort_with_status(_with_request_id(grpc_status_for(error, domain)))
    raise AssertionError("abort_with_status returned")  # pragma: no cover - grpc always raises


async def abort_internal(
    context: grpc.aio.ServicerContext, error: BaseException, domain: str, method: MethodName
) -> NoReturn:
    """Logs the failure with its traceback; the client only gets an id to quote."""
    trace_id = current_trace_id()
    reference = f"trace id {trace_id}" if trace_id else f"request id {current_request_id()}"
    logger.error("unhandled error in %s; %s", method.full, reference, exc_info=error)
    span = trace.get_current_span()
    span.record_exception(error)
    status = build_rpc_status(
        grpc.StatusCode.INTERNAL,
        f"internal error; {reference}",
        reason="INTERNAL_ERROR",
        domain=domain,
        metadata={"trace_id": trace_id, "request_id": current_request_id()},
    )
    await context.abort_with_status(_with_request_id(rpc_status.to_status(status)))
    raise AssertionError("abort_with_status returned")  # pragma: no cover


# ---------------------------------------------------------------- the chain


class TracingInterceptor(WrappingInterceptor):
    """A SERVER span per RPC, child of the caller's `traceparent` when there is one."""

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        super().__init__()
        self._tracer = trace.get_tracer("crm_shared.grpc.server", tracer_provider=tracer_provider)

    def applies_to(self, method: MethodName) -> bool:
        # Probes hit health every few seconds; a span each would bury real traffic.
        return not method.is_infrastructure

    def wrap_behavior(self, behavior: Behavior, method: MethodName) -> Behavior:
        tracer = self._tracer
        span_name = method.full.lstrip("/")
        attributes = {"rpc.system": "grpc", "rpc.service": method.service, "rpc.method": method.method}

        async def traced(request: Any, context: grpc.aio.ServicerContext) -> Any:
            carrier = {key: value for key, value in context.invocation_metadata() or () if key[:5] == "trace"}
            parent = extract(carrier) if carrier else None
            with tracer.start_as_current_span(
                span_name,
                context=parent,
                kind=SpanKind.SERVER,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                error: BaseException | None = None
                try:
                    return await behavior(request, context)
                except BaseException as raised:
                    error = raised
                    raise
                finally:
                    code = outcome_code(context, error)
                    span.set_attribute("rpc.grpc.status_code", code.value[0])
                    if code in _SERVER_ERROR_CODES:
                        span.set_status(Status(StatusCode.ERROR, code.name))

        return traced


class RequestIdInterceptor(WrappingInterceptor):
    """Takes the caller's x-request-id (or makes one), exposes it, and echoes it back."""

    def wrap_behavior(self, behavior: Behavior, method: MethodName) -> Behavior:
        async def with_request_id(request: Any, context: grpc.aio.ServicerContext) -> Any:
            request_id = metadata_value(context, REQUEST_ID_KEY)
            if not request_id or len(request_id) > _MAX_REQUEST_ID_LENGTH or not request_id.isprintable():
                request_id = os.urandom(16).hex()  # uuid4().hex without building a UUID object
            token = set_request_id(request_id)
            # Echoed in the trailers, which every call sends anyway: sending initial metadata
            # just for it costs an extra HTTP/2 frame per call. Aborts add it again (below).
            context.set_trailing_metadata(((REQUEST_ID_KEY, request_id),))
            try:
                return await behavior(request, context)
            finally:
                reset_request_id(token)

        return with_request_id


class MetricsInterceptor(WrappingInterceptor):
    """RED metrics: handled count by code, latency histogram, in-flight gauge."""

    def __init__(self, metrics: GrpcServerMetrics | None = None) -> None:
        super().__init__()
        self._metrics = metrics or grpc_server_metrics()

    def wrap_behavior(self, behavior: Behavior, method: MethodName) -> Behavior:
        handled = self._metrics.handled
        latency = self._metrics.handling_seconds.labels(method.service, method.method)
        in_flight = self._metrics.in_flight
        # Resolving label children costs more than the increment; do it once per method and code.
        counters: dict[grpc.StatusCode, Any] = {}

        async def measured(request: Any, context: grpc.aio.ServicerContext) -> Any:
            in_flight.inc()
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                return await behavior(request, context)
            except BaseException as raised:
                error = raised
                raise
            finally:
                latency.observe(time.perf_counter() - started)
                in_flight.dec()
                code = outcome_code(context, error)
                counter = counters.get(code)
                if counter is None:
                    counter = counters[code] = handled.labels(method.service, method.method, code.name)
                counter.inc()

        return measured


class DrainGate(WrappingInterceptor):
    """Refuses new RPCs once the service is draining, and lets stop() wait for in-flight ones.

    gRPC's own server.stop(grace) refuses new calls too, but also stops answering
    health checks; with this gate, health still reports NOT_SERVING while
    in-flight calls finish, which is what load balancers and k8s probes watch.
    """

    def __init__(self, domain: str) -> None:
        super().__init__()
        self._domain = domain
        self._draining = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def close(self) -> None:
        self._draining = True

    async def wait_idle(self, within: float | None) -> bool:
        """True when every admitted RPC finished within `within` seconds."""
        try:
            await asyncio.wait_for(self._idle.wait(), within)
        except TimeoutError:
            return False
        return True

    def applies_to(self, method: MethodName) -> bool:
        return not method.is_infrastructure

    def wrap_behavior(self, behavior: Behavior, method: MethodName) -> Behavior:
        async def gated(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if self._draining:
                await abort_with_error(
                    context, Unavailable("server is shutting down", reason="SERVER_DRAINING"), self._domain
                )
            self._in_flight += 1
            self._idle.clear()
            try:
                return await behavior(request, context)
            finally:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self._idle.set()

        return gated


class AuthInterceptor(WrappingInterceptor):
    """Verifies `authorization: Bearer <jwt>` and sets the principal for the handler."""

    def __init__(self, verifier: JwtVerifier, domain: str) -> None:
        super().__init__()
        self._verifier = verifier
        self._domain = domain

    def applies_to(self, method: MethodName) -> bool:
        return not method.is_infrastructure

    def wrap_behavior(self, behavior: Behavior, method: MethodName) -> Behavior:
        verify = self._verifier.verify

        async def authenticated(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                principal = verify(bearer_token(metadata_value(context, AUTHORIZATION_KEY)))
            except Unauthenticated as error:
                logger.info("rejected %s: %s", method.full, error.reason)
                await abort_with_error(context, error, self._domain)
            except Exception as error:  # a verifier bug must not leak its text to the caller
                await abort_internal(context, error, self._domain, method)
            token = set_principal(principal)
            try:
                return await behavior(request, context)
            finally:
                reset_principal(token)

        return authenticated


class PolicyInterceptor(WrappingInterceptor):
    """Deny by default: an RPC the access policy does not name is refused for everyone, and a
    caller whose roles have no scope for the RPC's resource and action is refused before any
    handler runs. Which rows the caller may touch is decided later, inside the queries."""

    def __init__(self, policy: AccessPolicy, domain: str) -> None:
        super().__init__()
        self._policy = policy
        self._domain = domain

    def applies_to(self, method: MethodName) -> bool:
        return not method.is_infrastructure

    def wrap_behavior(self, behavior: Behavior, method: MethodName) -> Behavior:
        permission = self._policy.method_permission(method.full)
        policy, domain = self._policy, self._domain

        async def authorized(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if permission is None:
                error: DomainError = PermissionDenied(
                    f"{method.full} is not in the access policy", reason="METHOD_NOT_IN_POLICY"
                )
                await abort_with_error(context, error, domain)
            try:
                policy.grant(current_principal(), permission.resource, permission.action)
            except PermissionDenied as denied:
                await abort_with_error(context, denied, domain)
            return await behavior(request, context)

        return authorized


def bearer_token(header: str | None) -> str:
    if not header:
        raise Unauthenticated("missing authorization metadata", reason="TOKEN_MISSING")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("authorization must be 'Bearer <token>'", reason="TOKEN_MALFORMED")
    return token.strip()


class ValidationInterceptor(WrappingInterceptor):
    """protovalidate rules from the protos, checked on every request message."""

    def __init__(self, domain: str, validator: protovalidate.Validator | None = None) -> None:
        super().__init__()
        self._domain = domain
        self._validator = validator or protovalidate.Validator()

    def wrap(self, handler: grpc.RpcMethodHandler, method: MethodName) -> grpc.RpcMethodHandler:
        collect = self._validator.collect_violations
        domain = self._domain
        if handler.request_streaming:

            def wrap_stream(behavior: Behavior) -> Behavior:
                async def validating_stream(requests: AsyncIterator[Any], context: Any) -> Any:
                    # Raised inside the handler's loop, so the error mapper turns it into the status.
                    return await behavior(_validated(requests, collect), context)

                return validating_stream

            return wrap_handler(handler, method, wrap_stream)

        def wrap_unary(behavior: Behavior) -> Behavior:
            async def validating(request: Any, context: grpc.aio.ServicerContext) -> Any:
                try:
                    violations = collect(request)
                except Exception as error:  # rule compile/evaluation failure: our bug, not the caller's
                    await abort_internal(context, error, domain, method)
                if violations:
                    await abort_with_error(context, invalid_argument(violations), domain)
                return await behavior(request, context)

            return validating

        return wrap_handler(handler, method, wrap_unary)


async def _validated(requests: AsyncIterator[Any], collect: Callable[[Any], list[Any]]) -> AsyncIterator[Any]:
    async for request in requests:
        violations = collect(request)
        if violations:
            raise invalid_argument(violations)
        yield request


def invalid_argument(violations: Iterable[Any]) -> InvalidArgument:
    field_violations = [
        FieldViolation(field_path(v.proto.field.elements), v.proto.message) for v in violations
    ]
    summary = "; ".join(f"{v.field or '(message)'}: {v.description}" for v in field_violations[:3])
    more = f" (+{len(field_violations) - 3} more)" if len(field_violations) > 3 else ""
    return InvalidArgument(f"invalid request: {summary}{more}", field_violations=field_violations)


def field_path(elements: Iterable[Any]) -> str:
    """buf.validate.FieldPath -> "customer.email_addresses[0].address" / "labels[\"k\"]"."""
    parts: list[str] = []
    for element in elements:
        segment = element.field_name
        subscript = element.subscript
        if subscript is not None:
            kind, value = subscript.field, subscript.value
            if kind == "string_key":
                segment += f'["{value}"]'
            elif kind == "bool_key":
                segment += f"[{str(value).lower()}]"
            else:  # index, int_key, uint_key
                segment += f"[{value}]"
        parts.append(segment)
    return ".".join(parts)


class ErrorMappingInterceptor(WrappingInterceptor):
    """DomainError -> canonical code + google.rpc.Status; anything else -> opaque INTERNAL."""

    def __init__(self, domain: str) -> None:
        super().__init__()
        self._domain = domain

    def wrap_behavior(self, behavior: Behavior, method: MethodName) -> Behavior:
        domain = self._domain

        async def mapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                return await behavior(request, context)
            except (grpc.aio.AbortError, asyncio.CancelledError):
                raise  # already aborted by the handler, or the caller went away
            except DomainError as error:
                await abort_with_error(context, error, domain)
            except Exception as error:
                await abort_internal(context, error, domain, method)

        return mapped


def server_interceptors(
    *,
    domain: str,
    verifier: JwtVerifier,
    drain_gate: DrainGate | None = None,
    metrics: GrpcServerMetrics | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    policy: AccessPolicy | None = None,
) -> list[grpc.aio.ServerInterceptor]:
    """The chain in the order grpc.aio applies it (first = outermost)."""
    return [
        TracingInterceptor(tracer_provider),
        RequestIdInterceptor(),
        MetricsInterceptor(metrics),
        drain_gate or DrainGate(domain),
        AuthInterceptor(verifier, domain),
        *([PolicyInterceptor(policy, domain)] if policy is not None else []),
        ValidationInterceptor(domain),
        ErrorMappingInterceptor(domain),
    ]
