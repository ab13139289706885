"""Composition root of the sales service: builds every part once, in one place.

Nothing here runs at import time; `build` is called by crm_shared.runtime after
logging, tracing, the JWT verifier and the NATS connection are ready.
"""

from __future__ import annotations

from pathlib import Path

from crm.sales.v1 import (
    campaign_service_pb2_grpc,
    forecast_service_pb2_grpc,
    lead_service_pb2_grpc,
    opportunity_service_pb2_grpc,
    product_service_pb2_grpc,
    quote_service_pb2_grpc,
    task_service_pb2_grpc,
)
from crm_sales.adapters import tables
from crm_sales.api.campaigns import CampaignServicer
from crm_sales.api.forecasts import ForecastServicer
from crm_sales.api.leads import LeadServicer
from crm_sales.api.opportunities import OpportunityServicer
from crm_sales.api.products import ProductServicer
from crm_sales.api.quotes import QuoteServicer
from crm_sales.api.tasks import TaskServicer
from crm_sales.app import SalesApp
from crm_sales.config import SalesSettings
from crm_sales.consumers import event_consumers
from crm_sales.timers import timer_handlers
from crm_shared.composition import build_core, personal_data_codec
from crm_shared.runtime import Infrastructure, ServiceParts

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


async def build(settings: SalesSettings, infra: Infrastructure) -> ServiceParts:
    codec = personal_data_codec(settings)
    core = await build_core(settings, infra, tables=tables.platform, migrations=MIGRATIONS)
    app = SalesApp(
        settings=settings,
        db=core.db,
        uow_factory=core.uow_factory,
        policy=infra.policy,
        page_tokens=core.page_tokens,
        codec=codec,
        clock=infra.clock,
        js=infra.js,
    )
    workers = list(core.workers)
    # Durable timers: quote expiry, task reminders.
    workers.append(core.timer_scheduler(timer_handlers(app)))
    if infra.js is not None:
        workers.extend(event_consumers(app))
    leads = LeadServicer(app)
    servicers = [
        (lead_service_pb2_grpc.add_LeadServiceServicer_to_server, leads),
        (opportunity_service_pb2_grpc.add_OpportunityServiceServicer_to_server, OpportunityServicer(app)),
        (product_service_pb2_grpc.add_ProductServiceServicer_to_server, ProductServicer(app)),
        (quote_service_pb2_grpc.add_QuoteServiceServicer_to_server, QuoteServicer(app)),
        (task_service_pb2_grpc.add_TaskServiceServicer_to_server, TaskServicer(app)),
        (campaign_service_pb2_grpc.add_CampaignServiceServicer_to_server, CampaignServicer(app)),
        (forecast_service_pb2_grpc.add_ForecastServiceServicer_to_server, ForecastServicer(app)),
    ]
    return ServiceParts(
        servicers=servicers,
        service_names=[
            f"crm.sales.v1.{type(s).__name__.removesuffix('Servicer')}Service" for _, s in servicers
        ],
        workers=workers,
        closers=[leads.close, core.db.dispose],
    )
