"""Unit of work: one transaction holding a use case's rows, its events (outbox) and its audit records.

    async with uow_factory() as uow:
        await uow.session.execute(insert(customers).values(...))
        uow.emit("crm.customer.customer.created", CustomerCreated(...), resource=name)
        uow.audit("created", name, ["display_name", "owner"])
        await uow.commit()

Events and audit records are buffered and inserted just before COMMIT, so they
commit or vanish with the change they describe. Leaving the block without
commit() (or with an exception) rolls everything back. After a commit the
factory's `on_commit` callback runs (the outbox relay's `notify`), so events go
out at once instead of on the next poll.

On SQLite a unit of work holds `db.write_lock` for its whole life (one writer);
do not open a second unit of work inside one in the same task.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime
from typing import Any

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared.clock import Clock
from crm_shared.db.engine import Database
from crm_shared.db.tables import PlatformTables
from crm_shared.events.envelope import build_envelope, serialize_envelope
from crm_shared.ids import new_id
from crm_shared.observability.propagation import current_traceparent
from crm_shared.principal import current_request_id, optional_principal

log = logging.getLogger(__name__)


class UnitOfWorkClosed(RuntimeError):
    """emit/audit/commit after the unit of work committed or rolled back."""


class UnitOfWork:
    def __init__(self, factory: UnitOfWorkFactory) -> None:
        self._factory = factory
        self._db = factory.db
        self._tables = factory.tables
        self.service = factory.service
        self._session: AsyncSession | None = None
        self._lock_held = False
        self._outbox_rows: list[dict[str, Any]] = []
        self._audit_rows: list[dict[str, Any]] = []
        self._event_ids: list[str] = []
        self._events_written = 0
        self._state = "new"  # new -> open -> committed | rolled_back
        self.now: datetime = factory.clock.now()
        principal = optional_principal()
        self.actor_subject = principal.subject if principal else f"service:{factory.service}"
        self.actor_team = principal.team if principal else ""
        self.request_id = current_request_id()

    @property
    def session(self) -> AsyncSession:
        if self._session is None or self._state != "open":
            raise UnitOfWorkClosed("the unit of work is not open")
        return self._session

    @property
    def emitted_event_ids(self) -> list[str]:
        return list(self._event_ids)

    async def __aenter__(self) -> UnitOfWork:
        await self._db.write_lock.__aenter__()
        self._lock_held = True
        try:
            self._session = self._db.sessionmaker()
            await self._session.begin()
        except BaseException:
            await self._release()
            raise
        # "now" is the start of the transaction: every row and event in it carries the same time.
        self.now = self._factory.clock.now()
        self._state = "open"
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if self._state == "open":
                await self.rollback()
        finally:
            await self._release()

    async def _release(self) -> None:
        try:
            if self._session is not None:
                await self._session.close()
        finally:
            self._session = None
            if self._lock_held:
                self._lock_held = False
                await self._db.write_lock.__aexit__(None, None, None)

    def emit(self, subject: str, payload: Message, *, resource: str) -> str:
        """Record an event for NATS `subject` about `resource`; returns its id (UUIDv7)."""
        self._require_open()
        event_id = new_id()
        traceparent = current_traceparent()
        envelope = build_envelope(
            event_id=event_id,
            payload=payload,
            source=self.service,
            subject=resource,
            occurred_at=self.now,
            actor_subject=self.actor_subject,
            actor_team=self.actor_team,
            traceparent=traceparent,
            request_id=self.request_id,
        )
        self._outbox_rows.append(
            {
                "event_id": event_id,
                "subject": subject,
                "event_type": envelope.type,
                "envelope": serialize_envelope(envelope),
                "traceparent": traceparent,
                "created_at": self.now,
                "attempts": 0,
            }
        )
        self._event_ids.append(event_id)
        return event_id

    def audit(self, action: str, resource: str, fields: Iterable[str] = ()) -> None:
        """Append an audit record (field names only, never values) to this transaction."""
        self._require_open()
        self._audit_rows.append(
            {
                "id": new_id(),
                "occurred_at": self.now,
                "actor": self.actor_subject,
                "actor_team": self.actor_team,
                "action": action,
                "resource": resource,
                "fields": sorted(set(fields)),
                "request_id": self.request_id,
            }
        )

    async def flush(self) -> None:
        """Insert buffered outbox and audit rows now (commit() does this anyway)."""
        session = self.session
        if self._outbox_rows:
            rows, self._outbox_rows = self._outbox_rows, []
            await session.execute(self._tables.outbox.insert(), rows)
            self._events_written += len(rows)
        if self._audit_rows:
            rows, self._audit_rows = self._audit_rows, []
            await session.execute(self._tables.audit_log.insert(), rows)

    async def commit(self) -> None:
        self._require_open()
        await self.flush()
        await self.session.commit()
        self._state = "committed"
        if self._events_written and self._factory.on_commit is not None:
            try:
                self._factory.on_commit()
            except Exception:  # the relay's poll will still pick the events up
                log.exception("on_commit callback failed")

    async def rollback(self) -> None:
        if self._state != "open":
            return
        self._state = "rolled_back"
        self._outbox_rows.clear()
        self._audit_rows.clear()
        if self._session is not None:
            await self._session.rollback()

    def _require_open(self) -> None:
        if self._state != "open":
            raise UnitOfWorkClosed(f"the unit of work is {self._state.replace('_', ' ')}")


class UnitOfWorkFactory:
    """Makes units of work for one service; built once in the composition root."""

    def __init__(
        self,
        db: Database,
        tables: PlatformTables,
        *,
        service: str,
        clock: Clock,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.tables = tables
        self.service = service
        self.clock = clock
        self.on_commit = on_commit

    def __call__(self) -> UnitOfWork:
        return UnitOfWork(self)

    @contextlib.asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        """A session for queries outside any unit of work; rolled back at the end."""
        async with self.db.read_session() as session:
            yield session
