"""Reading what a service published, straight from JetStream (for assertions in tests)."""

from __future__ import annotations

import asyncio
import time

import nats.errors
from google.protobuf.message import DecodeError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from crm.common.v1 import events_pb2


async def stream_envelopes(
    js, stream: str, subject: str = ">"
) -> list[tuple[dict[str, str], events_pb2.EventEnvelope]]:
    """Every message now in `stream` matching `subject`, as (headers, envelope), oldest first."""
    info = await js.stream_info(stream)
    if info.state.messages == 0:
        return []
    sub = await js.pull_subscribe(
        subject,
        stream=stream,
        config=ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, inactive_threshold=30
        ),
    )
    found = []
    try:
        while True:
            try:
                batch = await sub.fetch(256, timeout=0.5)
            except (TimeoutError, nats.errors.TimeoutError):
                break
            for msg in batch:
                envelope = events_pb2.EventEnvelope()
                try:
                    envelope.ParseFromString(msg.data)
                except DecodeError:
                    # Poison-message tests publish garbage on purpose on the shared test server.
                    continue
                found.append((dict(msg.headers or {}), envelope))
    finally:
        await sub.unsubscribe()
    return found


async def wait_for_envelopes(
    js, stream: str, *, subject: str = ">", resource: str | None = None, count: int = 1, within: float = 10.0
) -> list[events_pb2.EventEnvelope]:
    """Poll until `count` events (about `resource`, if given) are in the stream; bounded wait."""
    deadline = time.monotonic() + within
    while True:
        envelopes = [
            env
            for _, env in await stream_envelopes(js, stream, subject)
            if resource is None or env.subject == resource
        ]
        if len(envelopes) >= count or time.monotonic() > deadline:
            return envelopes
        await asyncio.sleep(0.1)
