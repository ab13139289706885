"""What every use case and servicer of the customer service shares, built once by bootstrap."""

from __future__ import annotations

from dataclasses import dataclass

from crm_customer.config import CustomerSettings
from crm_customer.service.customers import CustomerDeps
from crm_shared.clock import Clock
from crm_shared.db.engine import Database
from crm_shared.db.uow import UnitOfWorkFactory


@dataclass
class CustomerApp:
    settings: CustomerSettings
    db: Database
    uow_factory: UnitOfWorkFactory
    deps: CustomerDeps
    clock: Clock
    js: object | None  # nats.js.JetStreamContext, None when running without NATS
