"""What every use case and servicer of the servicedesk shares, built once by bootstrap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from crm_servicedesk.config import ServicedeskSettings
from crm_shared.access import AccessPolicy
from crm_shared.aip.paging import PageTokenCodec
from crm_shared.clock import Clock
from crm_shared.db.engine import Database
from crm_shared.db.uow import UnitOfWorkFactory

if TYPE_CHECKING:
    from crm_servicedesk.service.customer_snapshots import CustomerSnapshots


@dataclass
class ServicedeskApp:
    settings: ServicedeskSettings
    db: Database
    uow_factory: UnitOfWorkFactory
    policy: AccessPolicy
    page_tokens: PageTokenCodec
    clock: Clock
    js: object | None  # nats.js.JetStreamContext, None when running without NATS
    # One channel to the customer service per process: ticket creation and the retry timers share it.
    snapshots: CustomerSnapshots
