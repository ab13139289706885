"""What every use case and servicer of the sales service shares, built once by bootstrap."""

from __future__ import annotations

from dataclasses import dataclass

from crm_sales.config import SalesSettings
from crm_shared.access import AccessPolicy
from crm_shared.aip.paging import PageTokenCodec
from crm_shared.clock import Clock
from crm_shared.db.engine import Database
from crm_shared.db.uow import UnitOfWorkFactory
from crm_shared.pii.codec import PersonalDataCodec


@dataclass
class SalesApp:
    settings: SalesSettings
    db: Database
    uow_factory: UnitOfWorkFactory
    policy: AccessPolicy
    page_tokens: PageTokenCodec
    codec: PersonalDataCodec  # leads carry names, phones and emails
    clock: Clock
    js: object | None  # nats.js.JetStreamContext, None when running without NATS
