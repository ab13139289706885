"""Composition root of the servicedesk: builds every part once, in one place.

Nothing here runs at import time; `build` is called by crm_shared.runtime after
logging, tracing, the JWT verifier and the NATS connection are ready.
"""

from __future__ import annotations

from pathlib import Path

from crm.servicedesk.v1 import (
    csat_service_pb2_grpc,
    knowledge_service_pb2_grpc,
    sla_service_pb2_grpc,
    support_team_service_pb2_grpc,
    ticket_service_pb2_grpc,
)
from crm_servicedesk.adapters import tables
from crm_servicedesk.api.csat import CsatServicer
from crm_servicedesk.api.knowledge import KnowledgeServicer
from crm_servicedesk.api.sla import SlaServicer
from crm_servicedesk.api.support_teams import SupportTeamServicer
from crm_servicedesk.api.tickets import TicketServicer
from crm_servicedesk.app import ServicedeskApp
from crm_servicedesk.config import ServicedeskSettings
from crm_servicedesk.consumers import event_consumers
from crm_servicedesk.service.customer_snapshots import CustomerSnapshots
from crm_servicedesk.timers import timer_handlers
from crm_shared.composition import build_core
from crm_shared.runtime import Infrastructure, ServiceParts

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


async def build(settings: ServicedeskSettings, infra: Infrastructure) -> ServiceParts:
    core = await build_core(settings, infra, tables=tables.platform, migrations=MIGRATIONS)
    app = ServicedeskApp(
        settings=settings,
        db=core.db,
        uow_factory=core.uow_factory,
        policy=infra.policy,
        page_tokens=core.page_tokens,
        clock=infra.clock,
        js=infra.js,
        snapshots=CustomerSnapshots(settings),
    )
    workers = list(core.workers)
    # Durable timers: SLA warning/breach, snapshot retries, auto-close.
    workers.append(core.timer_scheduler(timer_handlers(app)))
    if infra.js is not None:
        workers.extend(event_consumers(app))
    servicers = [
        (ticket_service_pb2_grpc.add_TicketServiceServicer_to_server, TicketServicer(app)),
        (sla_service_pb2_grpc.add_SlaServiceServicer_to_server, SlaServicer(app)),
        (support_team_service_pb2_grpc.add_SupportTeamServiceServicer_to_server, SupportTeamServicer(app)),
        (knowledge_service_pb2_grpc.add_KnowledgeServiceServicer_to_server, KnowledgeServicer(app)),
        (csat_service_pb2_grpc.add_CsatServiceServicer_to_server, CsatServicer(app)),
    ]
    return ServiceParts(
        servicers=servicers,
        service_names=[
            f"crm.servicedesk.v1.{type(s).__name__.removesuffix('Servicer')}Service" for _, s in servicers
        ],
        workers=workers,
        closers=[app.snapshots.close, core.db.dispose],
    )
