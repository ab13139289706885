"""Durable consumers of every service's stream feeding the read models.

One durable pull consumer per producing service (reporting-<source> on CRM_<SOURCE>, filter
crm.<source>.>): one consumer per stream keeps the events of an entity in stream order, and the
registry fans each event out to every area's handlers inside the consumer's single unit of work
(inbox row + every read model + the projection_status row commit together, or not at all).
"""

from __future__ import annotations

from crm_reporting.app import ReportingApp
from crm_reporting.projection_registry import SOURCES, Handler, ProjectionRegistry, build_registry
from crm_reporting.service.projection_status import record_applied
from crm_shared.events.consumer import EventConsumer
from crm_shared.events.envelope import occurred_at
from crm_shared.events.streams import ensure_stream_exists, stream_for_service


def consumer_name(source: str) -> str:
    return f"reporting-{source}"


def tracked(handler: Handler, source: str) -> Handler:
    """The fan-out plus the consumer's projection_status row, in the same unit of work."""
    name = consumer_name(source)

    async def run(uow, envelope, payload) -> None:
        await handler(uow, envelope, payload)
        await record_applied(uow, consumer=name, source=source, event_time=occurred_at(envelope))

    return run


def source_handlers(registry: ProjectionRegistry, source: str) -> dict[str, tuple[type, Handler]]:
    """envelope type -> (payload type, tracked fan-out) for one source."""
    return {
        payload_type.DESCRIPTOR.full_name: (
            payload_type,
            tracked(registry.handler_for(source, payload_type), source),
        )
        for payload_type in registry.payload_types(source)
    }


class ProjectionConsumer:
    """Worker: ensures the source's stream (so it works before the producer exists), then consumes it."""

    def __init__(
        self, app: ReportingApp, source: str, registry: ProjectionRegistry, **consumer_options
    ) -> None:
        self.app = app
        self.source = source
        self.name = consumer_name(source)
        self.stream = stream_for_service(source)
        self.consumer = EventConsumer(
            app.db,
            app.uow_factory.tables,
            app.js,
            service="reporting",
            name=self.name,
            stream=self.stream.name,
            filter_subjects=[f"crm.{source}.>"],
            clock=app.clock,
            uow_factory=app.uow_factory,
            **consumer_options,
        )
        for payload_type, handler in source_handlers(registry, source).values():
            self.consumer.on(payload_type, handler)

    async def start(self) -> None:
        await ensure_stream_exists(self.app.js, self.stream)
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()


def event_consumers(app: ReportingApp, **consumer_options) -> list:
    """One ProjectionConsumer per source stream."""
    registry = build_registry(app)
    return [ProjectionConsumer(app, source, registry, **consumer_options) for source in SOURCES]
