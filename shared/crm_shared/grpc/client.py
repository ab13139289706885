"""Channels for calling other CRM services: credentials, trace context and request id travel along.

A call made while handling an RPC is made on the caller's behalf: it carries the
caller's token (the principal the auth interceptor set), the current trace
context (as the parent of a CLIENT span) and the current x-request-id.
Background work passes a `token_provider` returning a service identity instead.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from crm_shared.observability.propagation import inject
from crm_shared.principal import current_request_id, optional_principal

TokenProvider = Callable[[], str | Awaitable[str | None] | None]

_CLIENT_ERROR_CODES = frozenset(code for code in grpc.StatusCode if code is not grpc.StatusCode.OK)


class _CallContext:
    """What every outgoing call gets: token, request id, CLIENT span, default deadline."""

    def __init__(self, token_provider: TokenProvider | None, default_timeout: float | None) -> None:
        self._token_provider = token_provider
        self._default_timeout = default_timeout
        self._tracer = trace.get_tracer("crm_shared.grpc.client")
        self._pending: set[asyncio.Task[None]] = set()

    async def _token(self) -> str | None:
        if self._token_provider is None:
            principal = optional_principal()
            return principal.token if principal else None
        token = self._token_provider()
        return await token if inspect.isawaitable(token) else token

    async def _start(
        self, details: grpc.aio.ClientCallDetails
    ) -> tuple[grpc.aio.ClientCallDetails, trace.Span]:
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        service, _, method_name = method.lstrip("/").partition("/")
        span = self._tracer.start_span(
            method.lstrip("/"),
            kind=SpanKind.CLIENT,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method_name},
        )
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        if AUTHORIZATION not in metadata:
            try:
                token = await self._token()
            except BaseException:
                span.end()
                raise
            if token:
                metadata[AUTHORIZATION] = f"Bearer {token}"
        request_id = current_request_id()
        if request_id and REQUEST_ID not in metadata:
            metadata[REQUEST_ID] = request_id
        carrier: dict[str, str] = {}
        with trace.use_span(span, end_on_exit=False):
            inject(carrier)
        for key, value in carrier.items():
            metadata[key] = value
        timeout = details.timeout if details.timeout is not None else self._default_timeout
        return details._replace(metadata=metadata, timeout=timeout), span

    def _finish_when_done(self, call: Any, span: trace.Span) -> None:
        def on_done(done_call: Any) -> None:
            task = asyncio.ensure_future(_end_span(done_call, span))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

        call.add_done_callback(on_done)

    async def unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        details, span = await self._start(client_call_details)
        try:
            call = await continuation(details, request)
        except BaseException:
            span.end()
            raise
        # Waiting here makes the span cover the whole call, not just its start.
        code = await call.code()
        _record(span, code)
        span.end()
        return call

    async def streaming(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        details, span = await self._start(client_call_details)
        try:
            call = await continuation(details, request)
        except BaseException:
            span.end()
            raise
        self._finish_when_done(call, span)
        return call


# grpc.aio files each interceptor under the first call kind it implements, so one class per kind.
class _UnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, context: _CallContext) -> None:
        self._context = context

    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await self._context.unary(continuation, client_call_details, request)


class _UnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, context: _CallContext) -> None:
        self._context = context

    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await self._context.streaming(continuation, client_call_details, request)


class _StreamUnary(grpc.aio.StreamUnaryClientInterceptor):
    def __init__(self, context: _CallContext) -> None:
        self._context = context

    async def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await self._context.streaming(continuation, client_call_details, request_iterator)


class _StreamStream(grpc.aio.StreamStreamClientInterceptor):
    def __init__(self, context: _CallContext) -> None:
        self._context = context

    async def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await self._context.streaming(continuation, client_call_details, request_iterator)


AUTHORIZATION = "authorization"
REQUEST_ID = "x-request-id"


def _record(span: trace.Span, code: grpc.StatusCode) -> None:
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code in _CLIENT_ERROR_CODES:
        span.set_status(Status(StatusCode.ERROR, code.name))


async def _end_span(call: Any, span: trace.Span) -> None:
    try:
        _record(span, await call.code())
    finally:
        span.end()


def open_channel(
    target: str,
    *,
    token_provider: TokenProvider | None = None,
    default_timeout: float | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    """An insecure (in-cluster, mTLS by the mesh if any) channel with the call-context interceptor.

    default_timeout applies to calls made without their own `timeout=`.
    """
    context = _CallContext(token_provider, default_timeout)
    interceptors = [
        _UnaryUnary(context),
        _UnaryStream(context),
        _StreamUnary(context),
        _StreamStream(context),
    ]
    return grpc.aio.insecure_channel(target, options=list(options), interceptors=interceptors)
