"""Other services' events the contract service applies: OpportunityWon -> a draft contract.

One durable pull consumer on the sales service's stream (CRM_SALES); the handler lives in
service.opportunity_events. The stream is ensured here, so the consumer exists (and no won
opportunity is missed) even when the contract service starts before the sales service. Each event
is applied once (inbox row in the same transaction); a payload that can never be applied is
dead-lettered, not retried.
"""

from __future__ import annotations

from crm.sales.v1 import events_pb2 as sales_events_pb
from crm_contract.app import ContractApp
from crm_contract.service import opportunity_events
from crm_shared.events.consumer import EventConsumer
from crm_shared.events.envelope import EventEnvelope
from crm_shared.events.streams import ensure_stream_exists, stream_for_service

# As published by crm_sales (adapters/opportunity_published.py).
SUBJECT_OPPORTUNITY_WON = "crm.sales.opportunity.won"
SALES_CONSUMER = "contract-sales-events"


class SalesEventConsumer:
    """Worker: ensures CRM_SALES, then runs the durable consumer of won opportunities."""

    def __init__(self, app: ContractApp, **consumer_options) -> None:
        self.app = app
        self.name = SALES_CONSUMER
        self.consumer = EventConsumer(
            app.db,
            app.uow_factory.tables,
            app.js,
            service="contract",
            name=SALES_CONSUMER,
            stream=stream_for_service("sales").name,
            filter_subjects=[SUBJECT_OPPORTUNITY_WON],
            clock=app.clock,
            uow_factory=app.uow_factory,
            **consumer_options,
        )

        async def won(uow, envelope: EventEnvelope, payload: sales_events_pb.OpportunityWon) -> None:
            await opportunity_events.opportunity_won(uow, payload)

        self.consumer.on(sales_events_pb.OpportunityWon, won)

    async def start(self) -> None:
        await ensure_stream_exists(self.app.js, stream_for_service("sales"))
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()


def event_consumers(app: ContractApp) -> list:
    """EventConsumer workers."""
    return [SalesEventConsumer(app)]
