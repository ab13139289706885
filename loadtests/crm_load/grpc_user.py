"""GrpcUser: a Locust user that calls the CRM over gRPC and reports every call to Locust.

grpc must already be gevent-initialised (loadtests/locustfile.py does it before importing this):
without it a blocking call stalls every user in the process and the figures mean nothing.

Each call is one Locust request: type "grpc", name "<Service>/<Method>", response time in ms,
and on a non-OK status an exception named by the status code and the ErrorInfo reason
(`FAILED_PRECONDITION ALREADY_IN_STAGE`), so the failures table groups like causes together.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

import grpc
from google.protobuf import descriptor_pool, message_factory
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from locust import User

from crm_load import env, persona_stats, seedfile
from crm_load.seedfile import Identity

log = logging.getLogger("crm_load")
DEFAULT_DEADLINE_SECONDS = 5.0
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 32 * 1024 * 1024)]

# One channel per target for the whole process (CRM_LOAD_CHANNEL=process, the default): HTTP/2
# multiplexes every user's calls over it, as a backend-for-frontend would. CRM_LOAD_CHANNEL=user
# gives each simulated user its own connection (closer to many separate clients; more client CPU).
_shared_channels: dict[str, grpc.Channel] = {}
_logged_errors: set[tuple[str, str]] = set()


class CallFailed(Exception):
    """A non-OK gRPC status, as Locust shows it."""


def _method(service: str, method: str):
    return descriptor_pool.Default().FindMethodByName(f"{service}.{method}")


def _failure(exc: grpc.RpcError) -> CallFailed:
    reason = ""
    status = rpc_status.from_call(exc) if isinstance(exc, grpc.Call) else None
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
    code = exc.code().name if isinstance(exc, grpc.Call) else "UNKNOWN"
    return CallFailed(f"{code} {reason}".strip())


class GrpcUser(User):
    abstract = True
    role = ""  # the token's role claim
    pool = ""  # the seed file's list of identities this persona acts as ("reps", "agents", ...)

    def __init__(self, environment) -> None:
        super().__init__(environment)
        self.seed = seedfile.load()
        self.direct = env.flag(env.DIRECT)
        self.deadline = float(os.environ.get(env.DEADLINE, DEFAULT_DEADLINE_SECONDS))
        self.per_user_channels = os.environ.get(env.CHANNEL, "process") == "user"
        self._channels: dict[str, grpc.Channel] = {}
        self.index = self._next_index(environment)
        self.identity = self.choose_identity()
        self.metadata = (("authorization", f"Bearer {seedfile.minter().token(self.identity)}"),)

    # --- identity ------------------------------------------------------------------------------

    _counters: ClassVar[dict[str, Iterator[int]]] = {}

    @classmethod
    def _next_index(cls, environment) -> int:
        """0, 1, 2 ... per persona class; with N workers, worker k takes k, k+N, k+2N ..."""
        counter = GrpcUser._counters.setdefault(cls.__name__, itertools.count())
        workers = max(1, int(os.environ.get(env.WORKERS, "1")))
        worker = getattr(environment.runner, "worker_index", 0) if environment.runner else 0
        return next(counter) * workers + worker % workers

    def choose_identity(self) -> Identity:
        """This user's seeded identity (kept as self.profile); personas extend it with their data."""
        self.profile = self.pick(self.pool)
        return Identity(self.profile["subject"], self.role, self.profile["team"])

    def pick(self, pool_name: str) -> dict[str, Any]:
        pool = self.seed[pool_name]
        return pool[self.index % len(pool)]

    # --- calls ---------------------------------------------------------------------------------

    def _target(self, service: str) -> str:
        if self.direct:
            return self.seed["direct"][service]
        return os.environ.get(env.TARGET) or self.seed["gateway"]

    def _channel(self, service: str) -> grpc.Channel:
        target = self._target(service)
        channels = self._channels if self.per_user_channels else _shared_channels
        if target not in channels:
            channels[target] = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        return channels[target]

    def call(
        self,
        service: str,
        method: str,
        request: Any = None,
        *,
        requests: Iterable | None = None,
        metadata: tuple[tuple[str, str], ...] | None = None,
    ):
        """Unary, client-streaming or bidi (last reply kept) call, reported to Locust; None on failure."""
        metadata = metadata or self.metadata
        descriptor = _method(service, method)
        path = f"/{service}/{method}"
        reply_type = message_factory.GetMessageClass(descriptor.output_type)
        channel = self._channel(service)
        serializer, parse = (lambda m: m.SerializeToString()), reply_type.FromString
        name = f"{descriptor.containing_service.name}/{method}"
        started = time.perf_counter()
        reply, failure = None, None
        try:
            if descriptor.client_streaming and descriptor.server_streaming:
                stream = channel.stream_stream(path, serializer, parse)
                for reply in stream(iter(requests or ()), metadata=metadata, timeout=self.deadline):  # noqa: B007
                    pass  # keep the last reply: the import's final job state
            elif descriptor.client_streaming:
                reply = channel.stream_unary(path, serializer, parse)(
                    iter(requests or ()), metadata=metadata, timeout=self.deadline
                )
            else:
                reply = channel.unary_unary(path, serializer, parse)(
                    request, metadata=metadata, timeout=self.deadline
                )
        except grpc.RpcError as exc:
            failure = _failure(exc)
            self._log_first(name, exc)
        elapsed_ms = (time.perf_counter() - started) * 1000
        length = reply.ByteSize() if reply is not None else 0
        self.environment.events.request.fire(
            request_type="grpc",
            name=name,
            response_time=elapsed_ms,
            response_length=length,
            exception=failure,
            context={"persona": type(self).__name__},
        )
        persona_stats.record(type(self).__name__, elapsed_ms, length, failure)
        return None if failure else reply

    def _log_first(self, name: str, exc: grpc.RpcError) -> None:
        """The full details of the first failure per RPC and code (the table only has the code)."""
        code = exc.code().name if isinstance(exc, grpc.Call) else "UNKNOWN"
        if (name, code) not in _logged_errors:
            _logged_errors.add((name, code))
            details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
            log.warning("%s as %s: %s %s", name, self.identity, code, details)

    def on_start(self) -> None:
        """With CRM_LOAD_TOUR=1, every task once before the weighted mix: each RPC is exercised."""
        if env.flag(env.TOUR):
            for action in dict.fromkeys(self.tasks):
                action(self)

    def on_stop(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
