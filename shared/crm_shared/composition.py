"""The parts every service's composition root builds the same way, built once here.

A service's bootstrap calls `build_core` for its database, unit-of-work factory,
outbox relay and page-token codec, and `personal_data_codec` if it stores personal
data; then adds its own servicers, consumers and timers. Keeping this in one place
means a fix to start-up order (migrate → connect → stream → relay) reaches every service.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from crm_shared.aip.paging import PageTokenCodec
from crm_shared.clock import Clock
from crm_shared.db.engine import Database
from crm_shared.db.migrations import SchemaNotCurrent, apply_migrations, require_current_schema
from crm_shared.db.tables import PlatformTables
from crm_shared.db.uow import UnitOfWorkFactory
from crm_shared.events.relay import OutboxRelay
from crm_shared.events.streams import ensure_stream, stream_for_service
from crm_shared.observability.db_pool import track_pool
from crm_shared.pii.codec import PersonalDataCodec
from crm_shared.pii.crypto import BlindIndex, KeyRing
from crm_shared.runtime import Infrastructure, StartupError, Worker
from crm_shared.settings import ServiceSettings
from crm_shared.timers import TimerHandler, TimerScheduler


def required_secret(settings: ServiceSettings, name: str) -> str:
    value = getattr(settings, name).get_secret_value()
    if not value:
        prefix = settings.model_config.get("env_prefix", "CRM_")
        raise StartupError(
            f"{settings.service_name}: {prefix}{name.upper()} is not set (make run generates dev secrets)"
        )
    return value


def personal_data_codec(settings: ServiceSettings) -> PersonalDataCodec:
    try:
        return PersonalDataCodec(
            KeyRing.from_spec(required_secret(settings, "pii_keys")),
            BlindIndex(required_secret(settings, "blind_index_key")),
        )
    except ValueError as error:
        raise StartupError(f"{settings.service_name}: bad PII key material: {error}") from error


@dataclass
class ServiceCore:
    db: Database
    uow_factory: UnitOfWorkFactory
    page_tokens: PageTokenCodec
    relay: OutboxRelay | None
    tables: PlatformTables
    clock: Clock
    # Start order; the runtime stops them in reverse. Services append consumers and schedulers.
    workers: list[Worker] = field(default_factory=list)

    def timer_scheduler(self, handlers: Mapping[str, TimerHandler]) -> TimerScheduler:
        """The durable-timer Worker for `handlers`, woken after every commit (with the relay), so
        a deadline a transaction just scheduled is seen at once; the caller adds it to its workers."""
        scheduler = TimerScheduler(
            self.db, self.tables, self.uow_factory, clock=self.clock, handlers=handlers
        )
        notify_relay = self.uow_factory.on_commit

        def after_commit() -> None:
            if notify_relay is not None:
                notify_relay()
            scheduler.notify()

        self.uow_factory.on_commit = after_commit
        return scheduler


async def build_core(
    settings: ServiceSettings, infra: Infrastructure, *, tables: PlatformTables, migrations: Path
) -> ServiceCore:
    """Migrate (if configured), connect, make sure the service's stream exists, start the relay."""
    service = settings.service_name
    try:
        page_tokens = PageTokenCodec(required_secret(settings, "page_token_secret"))
    except ValueError as error:
        raise StartupError(f"{service}: bad page token secret: {error}") from error
    if settings.migrate_on_start:
        await apply_migrations(settings.database_url, migrations)
    else:
        try:
            await require_current_schema(settings.database_url, migrations)
        except SchemaNotCurrent as error:
            raise StartupError(f"{service}: {error}: run `python -m crm_{service} migrate` first") from None
    db = await Database.connect(settings.database_url, pool_size=settings.database_pool_size)
    track_pool(service, db.engine)
    relay = None
    if infra.js is not None:
        await ensure_stream(infra.js, stream_for_service(service, num_replicas=settings.stream_replicas))
        relay = OutboxRelay(db, tables, infra.js, clock=infra.clock, service=service)
    uow_factory = UnitOfWorkFactory(
        db, tables, service=service, clock=infra.clock, on_commit=relay.notify if relay else None
    )
    return ServiceCore(db, uow_factory, page_tokens, relay, tables, infra.clock, [relay] if relay else [])
