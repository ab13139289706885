"""One JetStream stream per producing service: CRM_<SERVICE> holding crm.<service>.>."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta

from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig, StreamInfo
from nats.js.errors import NotFoundError

_SERVICE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: list[str] = field(default_factory=list)
    # JetStream drops a message whose Nats-Msg-Id it saw within this window: the relay's retries
    # after a lost PubAck must land inside it.
    duplicate_window: timedelta = timedelta(minutes=10)
    max_age: timedelta = timedelta(days=30)
    storage: StorageType = StorageType.FILE
    num_replicas: int = 1

    def config(self) -> StreamConfig:
        return StreamConfig(
            name=self.name,
            subjects=list(self.subjects),
            storage=self.storage,
            duplicate_window=self.duplicate_window.total_seconds(),
            max_age=self.max_age.total_seconds(),
            num_replicas=self.num_replicas,
        )


def stream_name(service: str) -> str:
    return f"CRM_{service.upper()}"


def subject_prefix(service: str) -> str:
    return f"crm.{service}"


def stream_for_service(service: str, **overrides: object) -> StreamSpec:
    """stream_for_service("customer") -> StreamSpec("CRM_CUSTOMER", ["crm.customer.>"])."""
    if not _SERVICE_NAME.match(service):
        raise ValueError(f"service name {service!r} must be lower-case letters, digits and _")
    return StreamSpec(stream_name(service), [f"{subject_prefix(service)}.>"], **overrides)  # type: ignore[arg-type]


async def ensure_stream(js: JetStreamContext, spec: StreamSpec) -> StreamInfo:
    """Create the stream, or update it to `spec` if it exists (idempotent; safe at every start)."""
    try:
        await js.stream_info(spec.name)
    except NotFoundError:
        return await js.add_stream(spec.config())
    return await js.update_stream(spec.config())


async def ensure_stream_exists(js: JetStreamContext, spec: StreamSpec) -> StreamInfo:
    """Create another service's stream if it is missing (so a consumer can start before its
    producer), but never update it: its settings, e.g. the replica count, are the producer's."""
    try:
        return await js.stream_info(spec.name)
    except NotFoundError:
        return await js.add_stream(spec.config())
