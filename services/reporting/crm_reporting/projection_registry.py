"""Which read-model handlers run for which event: the seam between the streams and the areas.

Every area of the reporting service (customers, sales, contracts, servicedesk, agenda,
analytics) registers handlers for the event payload types it projects:

    def register(registry: ProjectionRegistry, app: ReportingApp) -> None:
        registry.on("sales", sales_events_pb2.OpportunityWon, opportunity_won)

Several areas may project the same event (an OpportunityWon feeds the funnel, the customer's
timeline and the analytics): the registry fans one event out to all of them, in registration
order, inside the single unit of work the consumer opens for that event — so one event is
applied to every read model exactly once, or not at all.

Handlers must be idempotent and tolerate out-of-order delivery (a nak'd event comes back after
later ones): keep the event time per entity and ignore what is older than what was applied.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf.message import Message

from crm_shared.db.uow import UnitOfWork
from crm_shared.events.envelope import EventEnvelope, event_type

Handler = Callable[[UnitOfWork, EventEnvelope, Any], Awaitable[None]]

# The producing services whose streams are projected.
SOURCES = ("customer", "sales", "contract", "servicedesk")


class ProjectionRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, dict[str, tuple[type[Message], list[Handler]]]] = {s: {} for s in SOURCES}

    def on(self, source: str, payload_type: type[Message], handler: Handler) -> None:
        if source not in self._handlers:
            raise ValueError(f"unknown source service {source!r}; expected one of {SOURCES}")
        entry = self._handlers[source].setdefault(event_type(payload_type), (payload_type, []))
        entry[1].append(handler)

    def payload_types(self, source: str) -> list[type[Message]]:
        return [payload_type for payload_type, _ in self._handlers[source].values()]

    def handler_for(self, source: str, payload_type: type[Message]) -> Handler:
        """One handler that runs every registered handler of the type, in order."""
        _, handlers = self._handlers[source][event_type(payload_type)]

        async def fan_out(uow: UnitOfWork, envelope: EventEnvelope, payload: Any) -> None:
            for handler in handlers:
                await handler(uow, envelope, payload)

        return fan_out


def build_registry(app) -> ProjectionRegistry:
    """Every area's handlers. Areas are imported here, not at module import (no side effects)."""
    from crm_reporting.service import areas

    registry = ProjectionRegistry()
    for register in areas.REGISTRARS:
        register(registry, app)
    return registry
