"""Composition root of the customer service: builds every part once, in one place.

Nothing here runs at import time; `build` is called by crm_shared.runtime after
logging, tracing, the JWT verifier and the NATS connection are ready.
"""

from __future__ import annotations

from pathlib import Path

from crm.customer.v1 import (
    audit_service_pb2_grpc,
    behavior_service_pb2_grpc,
    custom_field_service_pb2_grpc,
    customer_data_service_pb2_grpc,
    customer_service_pb2_grpc,
    follow_up_service_pb2_grpc,
    pool_service_pb2_grpc,
    privacy_service_pb2_grpc,
)
from crm_customer.adapters import tables
from crm_customer.api.audit import AuditServicer
from crm_customer.api.behavior import BehaviorServicer
from crm_customer.api.custom_fields import CustomFieldServicer
from crm_customer.api.customer_data import CustomerDataServicer
from crm_customer.api.follow_ups import FollowUpServicer
from crm_customer.api.pools import PoolServicer
from crm_customer.api.privacy import PrivacyServicer
from crm_customer.api.servicer import CustomerServicer
from crm_customer.app import CustomerApp
from crm_customer.config import CustomerSettings
from crm_customer.consumers import event_consumers
from crm_customer.service.customers import CustomerDeps
from crm_customer.timers import timer_handlers
from crm_shared.composition import build_core, personal_data_codec
from crm_shared.runtime import Infrastructure, ServiceParts

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


async def build(settings: CustomerSettings, infra: Infrastructure) -> ServiceParts:
    codec = personal_data_codec(settings)
    core = await build_core(settings, infra, tables=tables.platform, migrations=MIGRATIONS)
    db, workers = core.db, list(core.workers)
    app = CustomerApp(
        settings=settings,
        db=db,
        uow_factory=core.uow_factory,
        deps=CustomerDeps(
            policy=infra.policy,
            codec=codec,
            page_tokens=core.page_tokens,
            phone_region=settings.default_phone_region,
        ),
        clock=infra.clock,
        js=infra.js,
    )
    # Durable timers: pool reclaim and warnings, follow-up reminders, lifecycle.
    workers.append(core.timer_scheduler(timer_handlers(app)))
    if infra.js is not None:
        workers.extend(event_consumers(app))
    servicers = [
        (
            customer_service_pb2_grpc.add_CustomerServiceServicer_to_server,
            CustomerServicer(db=db, uow_factory=app.uow_factory, deps=app.deps),
        ),
        (pool_service_pb2_grpc.add_PoolServiceServicer_to_server, PoolServicer(app)),
        (follow_up_service_pb2_grpc.add_FollowUpServiceServicer_to_server, FollowUpServicer(app)),
        (behavior_service_pb2_grpc.add_BehaviorServiceServicer_to_server, BehaviorServicer(app)),
        (customer_data_service_pb2_grpc.add_CustomerDataServiceServicer_to_server, CustomerDataServicer(app)),
        (custom_field_service_pb2_grpc.add_CustomFieldServiceServicer_to_server, CustomFieldServicer(app)),
        (privacy_service_pb2_grpc.add_PrivacyServiceServicer_to_server, PrivacyServicer(app)),
        (audit_service_pb2_grpc.add_AuditServiceServicer_to_server, AuditServicer(app)),
    ]
    return ServiceParts(
        servicers=servicers,
        service_names=[
            f"crm.customer.v1.{type(s).__name__.removesuffix('Servicer')}Service" for _, s in servicers
        ],
        workers=workers,
        closers=[db.dispose],
    )
