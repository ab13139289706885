"""Other services' events the customer service applies (durable JetStream consumers).

Deals: opportunity created / won (stream CRM_SALES) and contract signed (CRM_CONTRACT) move a
customer's activity, last deal time, lifecycle stage and pool deadlines (service.deals). Payloads
are the producers' own event types (crm.sales.v1 OpportunityCreated / OpportunityWon,
crm.contract.v1 ContractSigned). Both streams are ensured here, so the durable consumers exist
before their producers do.
"""

from __future__ import annotations

from datetime import datetime

from crm.contract.v1 import events_pb2 as contract_pb
from crm.reporting.v1 import events_pb2 as reporting_pb
from crm.sales.v1 import events_pb2 as sales_pb
from crm_customer.app import CustomerApp
from crm_customer.service import deals, scores
from crm_shared.events.consumer import EventConsumer
from crm_shared.events.envelope import EventEnvelope, occurred_at
from crm_shared.events.streams import ensure_stream_exists, stream_for_service

SUBJECT_OPPORTUNITY_CREATED = "crm.sales.opportunity.created"
SUBJECT_OPPORTUNITY_WON = "crm.sales.opportunity.won"
SUBJECT_CONTRACT_SIGNED = "crm.contract.contract.signed"
SALES_CONSUMER = "customer-deals-sales"
CONTRACT_CONSUMER = "customer-deals-contract"
# Scores from the reporting service (tier from the ABC class, health score).
SUBJECT_CUSTOMER_SCORED = "crm.reporting.customer.scored"
SCORES_CONSUMER = "customer-reporting-scores"


def _when(uow, envelope: EventEnvelope, stamp) -> datetime:
    """The event's own time if it carries one, else when it occurred; never in the future."""
    moment = stamp.ToDatetime(tzinfo=occurred_at(envelope).tzinfo) if stamp.seconds or stamp.nanos else None
    return min(moment or occurred_at(envelope), uow.now)


class DealConsumers:
    """Worker: ensures the producers' streams, then runs one durable consumer per stream."""

    def __init__(self, app: CustomerApp, *, on_commit=None) -> None:
        self.app = app
        self.name = "customer-deal-consumers"
        js = app.js
        common = dict(
            service="customer",
            clock=app.clock,
            uow_factory=app.uow_factory,
        )
        self.sales = EventConsumer(
            app.db,
            app.uow_factory.tables,
            js,
            name=SALES_CONSUMER,
            stream=stream_for_service("sales").name,
            filter_subjects=[SUBJECT_OPPORTUNITY_CREATED, SUBJECT_OPPORTUNITY_WON],
            **common,
        )
        self.contract = EventConsumer(
            app.db,
            app.uow_factory.tables,
            js,
            name=CONTRACT_CONSUMER,
            stream=stream_for_service("contract").name,
            filter_subjects=[SUBJECT_CONTRACT_SIGNED],
            **common,
        )
        deps = app.deps

        async def created(uow, envelope: EventEnvelope, payload: sales_pb.OpportunityCreated) -> None:
            opportunity = payload.opportunity
            at = _when(uow, envelope, opportunity.create_time)
            await deals.opportunity_created(uow, deps, opportunity.customer, at)

        async def won(uow, envelope: EventEnvelope, payload: sales_pb.OpportunityWon) -> None:
            at = _when(uow, envelope, payload.won_time)
            await deals.deal_won(uow, deps, payload.opportunity.customer, at)

        async def signed(uow, envelope: EventEnvelope, payload: contract_pb.ContractSigned) -> None:
            await deals.deal_won(uow, deps, payload.customer, _when(uow, envelope, payload.sign_time))

        self.sales.on(sales_pb.OpportunityCreated, created)
        self.sales.on(sales_pb.OpportunityWon, won)
        self.contract.on(contract_pb.ContractSigned, signed)

    async def start(self) -> None:
        for service in ("sales", "contract"):
            await ensure_stream_exists(self.app.js, stream_for_service(service))
        await self.sales.start()
        await self.contract.start()

    async def stop(self) -> None:
        await self.contract.stop()
        await self.sales.stop()


class ScoreConsumer:
    """Worker: ensures CRM_REPORTING, then applies CustomerScored (service.scores)."""

    def __init__(self, app: CustomerApp, **consumer_options) -> None:
        self.app = app
        self.name = SCORES_CONSUMER
        self.consumer = EventConsumer(
            app.db,
            app.uow_factory.tables,
            app.js,
            service="customer",
            name=SCORES_CONSUMER,
            stream=stream_for_service("reporting").name,
            filter_subjects=[SUBJECT_CUSTOMER_SCORED],
            clock=app.clock,
            uow_factory=app.uow_factory,
            **consumer_options,
        )
        deps = app.deps

        async def scored(uow, envelope: EventEnvelope, payload: reporting_pb.CustomerScored) -> None:
            await scores.apply_score(uow, deps, payload)

        self.consumer.on(reporting_pb.CustomerScored, scored)

    async def start(self) -> None:
        await ensure_stream_exists(self.app.js, stream_for_service("reporting"))
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()


def event_consumers(app: CustomerApp) -> list:
    """EventConsumer workers (deals from sales and contract, scores from reporting)."""
    return [DealConsumers(app), ScoreConsumer(app)]
