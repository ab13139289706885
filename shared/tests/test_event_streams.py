"""Who owns a stream's settings: its producer updates them at every start; consumers only create
a missing stream (so they can start first) and never change it (real NATS JetStream)."""

from __future__ import annotations

from datetime import timedelta

from crm_shared.events.streams import ensure_stream, ensure_stream_exists, stream_for_service
from crm_shared.testing.fixtures_nats import JetStreamHandle


async def test_a_consumer_never_resets_the_settings_its_producer_gave_the_stream(
    jetstream: JetStreamHandle,
) -> None:
    service = f"owner_{jetstream.suffix}".lower()
    consumer_view = stream_for_service(service)

    created = await ensure_stream_exists(jetstream.js, consumer_view)  # the consumer starts first
    assert created.config.max_age == consumer_view.max_age.total_seconds()

    producer_view = stream_for_service(service, max_age=timedelta(days=3))
    await ensure_stream(jetstream.js, producer_view)
    await ensure_stream_exists(jetstream.js, consumer_view)  # the consumer restarts

    info = await jetstream.js.stream_info(producer_view.name)
    assert info.config.max_age == timedelta(days=3).total_seconds()
    assert info.config.subjects == [f"crm.{service}.>"]
