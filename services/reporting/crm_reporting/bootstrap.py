"""Composition root of the reporting service: builds every part once, in one place.

Nothing here runs at import time; `build` is called by crm_shared.runtime after
logging, tracing, the JWT verifier and the NATS connection are ready.
"""

from __future__ import annotations

from pathlib import Path

from crm.reporting.v1 import (
    agenda_service_pb2_grpc,
    customer_insight_service_pb2_grpc,
    export_service_pb2_grpc,
    finance_report_service_pb2_grpc,
    projection_service_pb2_grpc,
    sales_report_service_pb2_grpc,
    service_report_service_pb2_grpc,
)
from crm_reporting.adapters import tables
from crm_reporting.api.agenda import AgendaServicer
from crm_reporting.api.customer_insight import CustomerInsightServicer
from crm_reporting.api.exports import ReportExportServicer
from crm_reporting.api.finance_reports import FinanceReportServicer
from crm_reporting.api.projections import ProjectionServicer
from crm_reporting.api.sales_reports import SalesReportServicer
from crm_reporting.api.service_reports import ServiceReportServicer
from crm_reporting.app import ReportingApp
from crm_reporting.config import ReportingSettings
from crm_reporting.consumers import event_consumers
from crm_reporting.timers import timer_handlers
from crm_shared.composition import build_core
from crm_shared.runtime import Infrastructure, ServiceParts

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


async def build(settings: ReportingSettings, infra: Infrastructure) -> ServiceParts:
    core = await build_core(settings, infra, tables=tables.platform, migrations=MIGRATIONS)
    app = ReportingApp(
        settings=settings,
        db=core.db,
        uow_factory=core.uow_factory,
        policy=infra.policy,
        page_tokens=core.page_tokens,
        clock=infra.clock,
        js=infra.js,
    )
    workers = list(core.workers)
    # Durable timers: daily recomputation of time-dependent scores and agenda items.
    workers.append(core.timer_scheduler(timer_handlers(app)))
    if infra.js is not None:
        workers.extend(event_consumers(app))
    servicers = [
        (
            customer_insight_service_pb2_grpc.add_CustomerInsightServiceServicer_to_server,
            CustomerInsightServicer(app),
        ),
        (agenda_service_pb2_grpc.add_AgendaServiceServicer_to_server, AgendaServicer(app)),
        (sales_report_service_pb2_grpc.add_SalesReportServiceServicer_to_server, SalesReportServicer(app)),
        (
            finance_report_service_pb2_grpc.add_FinanceReportServiceServicer_to_server,
            FinanceReportServicer(app),
        ),
        (
            service_report_service_pb2_grpc.add_ServiceReportServiceServicer_to_server,
            ServiceReportServicer(app),
        ),
        (export_service_pb2_grpc.add_ReportExportServiceServicer_to_server, ReportExportServicer(app)),
        (projection_service_pb2_grpc.add_ProjectionServiceServicer_to_server, ProjectionServicer(app)),
    ]
    return ServiceParts(
        servicers=servicers,
        service_names=[
            f"crm.reporting.v1.{type(s).__name__.removesuffix('Servicer')}Service" for _, s in servicers
        ],
        workers=workers,
        closers=[core.db.dispose],
    )
