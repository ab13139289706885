"""Composition root of the contract service: builds every part once, in one place.

Nothing here runs at import time; `build` is called by crm_shared.runtime after
logging, tracing, the JWT verifier and the NATS connection are ready.
"""

from __future__ import annotations

from pathlib import Path

from crm.contract.v1 import (
    approval_service_pb2_grpc,
    contract_service_pb2_grpc,
    invoice_service_pb2_grpc,
    payment_service_pb2_grpc,
    receivable_service_pb2_grpc,
)
from crm_contract.adapters import tables
from crm_contract.api.approvals import ApprovalServicer
from crm_contract.api.contracts import ContractServicer
from crm_contract.api.invoices import InvoiceServicer
from crm_contract.api.payments import PaymentServicer
from crm_contract.api.receivables import ReceivableServicer
from crm_contract.app import ContractApp
from crm_contract.config import ContractSettings
from crm_contract.consumers import event_consumers
from crm_contract.timers import timer_handlers
from crm_shared.composition import build_core
from crm_shared.runtime import Infrastructure, ServiceParts

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


async def build(settings: ContractSettings, infra: Infrastructure) -> ServiceParts:
    core = await build_core(settings, infra, tables=tables.platform, migrations=MIGRATIONS)
    app = ContractApp(
        settings=settings,
        db=core.db,
        uow_factory=core.uow_factory,
        policy=infra.policy,
        page_tokens=core.page_tokens,
        clock=infra.clock,
        js=infra.js,
    )
    workers = list(core.workers)
    # Durable timers: renewal due, expiry, payment due/overdue.
    workers.append(core.timer_scheduler(timer_handlers(app)))
    if infra.js is not None:
        workers.extend(event_consumers(app))
    servicers = [
        (contract_service_pb2_grpc.add_ContractServiceServicer_to_server, ContractServicer(app)),
        (approval_service_pb2_grpc.add_ApprovalServiceServicer_to_server, ApprovalServicer(app)),
        (payment_service_pb2_grpc.add_PaymentServiceServicer_to_server, PaymentServicer(app)),
        (invoice_service_pb2_grpc.add_InvoiceServiceServicer_to_server, InvoiceServicer(app)),
        (receivable_service_pb2_grpc.add_ReceivableServiceServicer_to_server, ReceivableServicer(app)),
    ]
    return ServiceParts(
        servicers=servicers,
        service_names=[
            f"crm.contract.v1.{type(s).__name__.removesuffix('Servicer')}Service" for _, s in servicers
        ],
        workers=workers,
        closers=[core.db.dispose],
    )
