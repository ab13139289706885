"""What every use case and servicer of the reporting service shares, built once by bootstrap."""

from __future__ import annotations

from dataclasses import dataclass

from crm_reporting.config import ReportingSettings
from crm_shared.access import AccessPolicy
from crm_shared.aip.paging import PageTokenCodec
from crm_shared.clock import Clock
from crm_shared.db.engine import Database
from crm_shared.db.uow import UnitOfWorkFactory


@dataclass
class ReportingApp:
    settings: ReportingSettings
    db: Database
    uow_factory: UnitOfWorkFactory
    policy: AccessPolicy
    page_tokens: PageTokenCodec
    clock: Clock
    js: object | None  # nats.js.JetStreamContext, None when running without NATS
