"""Other services' events the sales service applies (CustomerMerged, CustomerErased…).

One durable pull consumer on the customer service's stream (CRM_CUSTOMER); the handlers live in
service.customer_events. The stream is ensured here, so the consumer exists before the customer
service does. Each event is applied once (inbox row in the same transaction); a payload that can
never be applied (a name that is not "customers/{id}") is dead-lettered, not retried.
"""

from __future__ import annotations

from crm.customer.v1 import data_events_pb2 as data_events_pb
from crm.customer.v1 import events_pb2 as events_pb
from crm.customer.v1 import privacy_events_pb2 as privacy_events_pb
from crm_sales.app import SalesApp
from crm_sales.service import customer_events
from crm_shared.events.consumer import EventConsumer
from crm_shared.events.envelope import EventEnvelope
from crm_shared.events.streams import ensure_stream_exists, stream_for_service

# As published by crm_customer (service/merge.py, service/privacy.py, adapters/published.py).
SUBJECT_CUSTOMER_MERGED = "crm.customer.customer.merged"
SUBJECT_CUSTOMER_ERASED = "crm.customer.customer.erased"
SUBJECT_CUSTOMER_DELETED = "crm.customer.customer.deleted"
CUSTOMER_CONSUMER = "sales-customer-events"


class CustomerEventConsumer:
    """Worker: ensures CRM_CUSTOMER, then runs the durable consumer of customer events."""

    def __init__(self, app: SalesApp, **consumer_options) -> None:
        self.app = app
        self.name = CUSTOMER_CONSUMER
        self.consumer = EventConsumer(
            app.db,
            app.uow_factory.tables,
            app.js,
            service="sales",
            name=CUSTOMER_CONSUMER,
            stream=stream_for_service("customer").name,
            filter_subjects=[SUBJECT_CUSTOMER_MERGED, SUBJECT_CUSTOMER_ERASED, SUBJECT_CUSTOMER_DELETED],
            clock=app.clock,
            uow_factory=app.uow_factory,
            **consumer_options,
        )

        async def merged(uow, envelope: EventEnvelope, payload: data_events_pb.CustomerMerged) -> None:
            await customer_events.customer_merged(uow, payload.survivor, list(payload.losers))

        async def erased(uow, envelope: EventEnvelope, payload: privacy_events_pb.CustomerErased) -> None:
            await customer_events.customer_erased(uow, payload.customer)

        async def deleted(uow, envelope: EventEnvelope, payload: events_pb.CustomerDeleted) -> None:
            await customer_events.customer_deleted(uow, payload.customer)

        self.consumer.on(data_events_pb.CustomerMerged, merged)
        self.consumer.on(privacy_events_pb.CustomerErased, erased)
        self.consumer.on(events_pb.CustomerDeleted, deleted)

    async def start(self) -> None:
        await ensure_stream_exists(self.app.js, stream_for_service("customer"))
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()


def event_consumers(app: SalesApp) -> list:
    """EventConsumer workers."""
    return [CustomerEventConsumer(app)]
