"""Composition root of the customer service: builds every part once, in one place.

Nothing here runs at import time; `build` is called by crm_shared.runtime after
logging, tracing, the JWT verifier and the NATS connection are ready.
"""

from __future__ import annotations

from pathlib import Path

from crm.customer.v1 import customer_service_pb2_grpc as rpc_grpc
from crm_customer.adapters import tables
from crm_customer.api.servicer import SERVICE, CustomerServicer
from crm_customer.config import CustomerSettings
from crm_customer.service.customers import CustomerDeps
from crm_shared.aip.paging import PageTokenCodec
from crm_shared.db.engine import Database
from crm_shared.db.migrations import apply_migrations
from crm_shared.db.uow import UnitOfWorkFactory
from crm_shared.events.relay import OutboxRelay
from crm_shared.events.streams import ensure_stream, stream_for_service
from crm_shared.pii.codec import PersonalDataCodec
from crm_shared.pii.crypto import BlindIndex, KeyRing
from crm_shared.runtime import Infrastructure, ServiceParts, StartupError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _secret(settings: CustomerSettings, name: str) -> str:
    value = getattr(settings, name).get_secret_value()
    if not value:
        raise StartupError(
            f"customer: CRM_CUSTOMER_{name.upper()} is not set (make run generates dev secrets)"
        )
    return value


async def build(settings: CustomerSettings, infra: Infrastructure) -> ServiceParts:
    try:
        codec = PersonalDataCodec(
            KeyRing.from_spec(_secret(settings, "pii_keys")), BlindIndex(_secret(settings, "blind_index_key"))
        )
        page_tokens = PageTokenCodec(_secret(settings, "page_token_secret"))
    except ValueError as error:
        raise StartupError(f"customer: bad key material: {error}") from error
    if settings.migrate_on_start:
        await apply_migrations(settings.database_url, MIGRATIONS)
    db = await Database.connect(settings.database_url, pool_size=settings.database_pool_size)
    workers = []
    on_commit = None
    if infra.js is not None:
        await ensure_stream(infra.js, stream_for_service("customer"))
        relay = OutboxRelay(db, tables.platform, infra.js, clock=infra.clock, service="customer")
        workers.append(relay)
        on_commit = relay.notify
    uow_factory = UnitOfWorkFactory(
        db, tables.platform, service="customer", clock=infra.clock, on_commit=on_commit
    )
    deps = CustomerDeps(
        policy=infra.policy,
        codec=codec,
        page_tokens=page_tokens,
        phone_region=settings.default_phone_region,
    )
    servicer = CustomerServicer(db=db, uow_factory=uow_factory, deps=deps)
    return ServiceParts(
        servicers=[(rpc_grpc.add_CustomerServiceServicer_to_server, servicer)],
        service_names=[SERVICE],
        workers=workers,
        closers=[db.dispose],
    )
