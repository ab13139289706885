"""Outbox relay: publishes committed events to JetStream, at least once, de-duplicated by event id.

A background worker in the service process. Rows are published in `seq` order
with header Nats-Msg-Id = event id and marked sent only after the PubAck
(`duplicate=True` counts as success: JetStream already has it). A crash between
PubAck and marking sent republishes the same id, which JetStream drops inside
the stream's duplicate window. NATS errors leave the rows unsent; the relay
backs off (exponential, capped) and retries the same rows forever, recording
attempts and the last error on the row.

PostgreSQL: rows are claimed with FOR UPDATE SKIP LOCKED inside the publishing
transaction, so several replicas can run a relay on one database. SQLite (one
process): rows are read without the write lock and marked sent under it, so a
slow NATS never blocks writers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from nats.js import JetStreamContext
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared.clock import Clock
from crm_shared.db.engine import Database
from crm_shared.db.tables import PlatformTables
from crm_shared.observability.propagation import extract, inject

log = logging.getLogger(__name__)
tracer = trace.get_tracer("crm_shared.events.relay")

OUTBOX_BACKLOG = Gauge("crm_outbox_backlog", "Outbox events not yet published", ["service"])
OUTBOX_OLDEST_AGE = Gauge(
    "crm_outbox_oldest_unsent_age_seconds", "Age of the oldest unpublished outbox event", ["service"]
)
OUTBOX_PUBLISHED = Counter(
    "crm_outbox_published", "Outbox events acknowledged by JetStream (duplicates included)", ["service"]
)
OUTBOX_PUBLISH_ERRORS = Counter(
    "crm_outbox_publish_errors", "Failed attempts to publish an outbox event", ["service"]
)

_DELETE_CHUNK = 5000
_METRICS_INTERVAL = 1.0


class PublishFailed(Exception):
    """Publishing stopped at one row; the rows before it were published."""


class OutboxRelay:
    """A runtime Worker: start() spawns the loop, notify() wakes it, stop() flushes (bounded) and returns."""

    def __init__(
        self,
        db: Database,
        tables: PlatformTables,
        js: JetStreamContext,
        *,
        clock: Clock,
        service: str = "",
        batch_size: int = 200,
        poll_interval: float = 1.0,
        retention: timedelta = timedelta(days=7),
        publish_timeout: float = 5.0,
        initial_backoff: float = 0.1,
        max_backoff: float = 5.0,
        stop_timeout: float = 5.0,
        cleanup_interval: float = 60.0,
    ) -> None:
        self.db = db
        self.outbox = tables.outbox
        self.js = js
        self.clock = clock
        self.service = service or "unknown"
        self.name = f"outbox-relay:{self.service}"
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.retention = retention
        self.publish_timeout = publish_timeout
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.stop_timeout = stop_timeout
        self.cleanup_interval = cleanup_interval
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._next_cleanup = 0.0
        self._next_metrics = 0.0
        self.failures = 0  # consecutive failed passes
        self._published = OUTBOX_PUBLISHED.labels(self.service)
        self._errors = OUTBOX_PUBLISH_ERRORS.labels(self.service)

    # --- Worker protocol -------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is not None:
            return
        self._stopped.clear()
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopped.set()
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), self.stop_timeout)
        except TimeoutError:
            log.warning(
                "outbox relay did not flush within %.1fs; unsent events stay in the outbox", self.stop_timeout
            )
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def notify(self) -> None:
        """Wake the relay now (a unit of work calls this after committing events)."""
        self._wake.set()

    # --- one pass --------------------------------------------------------------------------
    async def publish_pending(self) -> int:
        """Publish up to batch_size unsent events; returns how many. Raises PublishFailed on a NATS error."""
        if self.db.dialect == "postgresql":
            return await self._publish_pending_claimed()
        return await self._publish_pending_single()

    async def _publish_pending_claimed(self) -> int:
        failure: tuple[int, BaseException] | None = None
        async with self.db.sessionmaker() as session, session.begin():
            rows = (await session.execute(self._unsent_query().with_for_update(skip_locked=True))).all()
            if not rows:
                return 0
            published, failure = await self._publish_rows(rows)
            if published:
                await self._mark_sent(session, published)
            if failure is not None:
                await self._record_failure(session, *failure)
        return self._finish(len(published), failure)

    async def _publish_pending_single(self) -> int:
        async with self.db.read_session() as session:
            rows = (await session.execute(self._unsent_query())).all()
        if not rows:
            return 0
        published, failure = await self._publish_rows(rows)
        async with self.db.write_lock, self.db.sessionmaker() as session, session.begin():
            if published:
                await self._mark_sent(session, published)
            if failure is not None:
                await self._record_failure(session, *failure)
        return self._finish(len(published), failure)

    def _finish(self, count: int, failure: tuple[int, BaseException] | None) -> int:
        if failure is not None:
            seq, exc = failure
            raise PublishFailed(f"outbox seq {seq}: {type(exc).__name__}: {exc}") from exc
        return count

    def _unsent_query(self) -> sa.Select[Any]:
        o = self.outbox.c
        return (
            sa.select(o.seq, o.event_id, o.subject, o.envelope, o.traceparent)
            .where(o.sent_at.is_(None))
            .order_by(o.seq)
            .limit(self.batch_size)
        )

    async def _publish_rows(self, rows: Sequence[Any]) -> tuple[list[int], tuple[int, BaseException] | None]:
        published: list[int] = []
        nc = getattr(self.js, "_nc", None)
        for row in rows:
            try:
                if nc is not None and not nc.is_connected:
                    raise ConnectionError("not connected to NATS")
                await self._publish_one(row)
            except Exception as exc:
                self._errors.inc()
                return published, (row.seq, exc)
            published.append(row.seq)
            self._published.inc()
        return published, None

    async def _publish_one(self, row: Any) -> None:
        parent = extract({"traceparent": row.traceparent}) if row.traceparent else None
        with tracer.start_as_current_span(
            f"publish {row.subject}",
            context=parent,
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "nats",
                "messaging.destination.name": row.subject,
                "messaging.message.id": row.event_id,
            },
        ) as span:
            headers: dict[str, str] = {"Nats-Msg-Id": row.event_id}
            inject(headers)
            if "traceparent" not in headers and row.traceparent:
                headers["traceparent"] = row.traceparent  # no SDK installed: pass the producer's through
            try:
                ack = await self.js.publish(
                    row.subject, row.envelope, timeout=self.publish_timeout, headers=headers
                )
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise
            span.set_attribute("messaging.nats.duplicate", bool(ack.duplicate))

    async def _mark_sent(self, session: AsyncSession, seqs: list[int]) -> None:
        o = self.outbox.c
        await session.execute(
            self.outbox.update()
            .where(o.seq.in_(seqs))
            .values(sent_at=self.clock.now(), attempts=o.attempts + 1, last_error=None)
        )

    async def _record_failure(self, session: AsyncSession, seq: int, exc: BaseException) -> None:
        o = self.outbox.c
        await session.execute(
            self.outbox.update()
            .where(o.seq == seq)
            .values(attempts=o.attempts + 1, last_error=f"{type(exc).__name__}: {exc}"[:2000])
        )

    # --- housekeeping ----------------------------------------------------------------------
    async def purge_sent(self) -> int:
        """Delete sent rows older than the retention period; returns how many."""
        o = self.outbox.c
        cutoff = self.clock.now() - self.retention
        total = 0
        while True:
            chunk = (
                sa.select(o.seq).where(o.sent_at.is_not(None), o.sent_at < cutoff).limit(_DELETE_CHUNK)
            ).scalar_subquery()
            async with self.db.write_lock, self.db.sessionmaker() as session, session.begin():
                result = await session.execute(self.outbox.delete().where(o.seq.in_(chunk)))
            deleted = result.rowcount or 0
            total += deleted
            if deleted < _DELETE_CHUNK:
                return total

    async def refresh_metrics(self) -> tuple[int, float]:
        """Backlog size and oldest unsent age (seconds), also exported as gauges."""
        o = self.outbox.c
        async with self.db.read_session() as session:
            count, oldest = (
                await session.execute(
                    sa.select(sa.func.count(), sa.func.min(o.created_at)).where(o.sent_at.is_(None))
                )
            ).one()
        age = max(0.0, (self.clock.now() - oldest).total_seconds()) if oldest is not None else 0.0
        OUTBOX_BACKLOG.labels(self.service).set(count)
        OUTBOX_OLDEST_AGE.labels(self.service).set(age)
        return count, age

    async def _housekeeping(self) -> None:
        now = time.monotonic()
        try:
            if now >= self._next_metrics:
                self._next_metrics = now + _METRICS_INTERVAL
                await self.refresh_metrics()
            if now >= self._next_cleanup:
                self._next_cleanup = now + self.cleanup_interval
                deleted = await self.purge_sent()
                if deleted:
                    log.info("outbox: deleted %d sent events older than %s", deleted, self.retention)
        except Exception:
            log.exception("outbox housekeeping failed")

    # --- loop ------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            # Only a pass that *started* after stop() was requested proves the outbox is flushed:
            # rows committed while an earlier pass was publishing (or waiting for the SQLite write
            # lock) were not in what it read.
            flushing = self._stopped.is_set()
            self._wake.clear()
            try:
                published = await self.publish_pending()
            except Exception as exc:
                self.failures += 1
                if self._stopped.is_set():
                    log.warning("outbox relay stopping with unsent events: %s", exc)
                    return
                delay = min(self.max_backoff, self.initial_backoff * 2 ** (self.failures - 1))
                delay *= random.uniform(0.8, 1.0)
                log.warning(
                    "outbox publish failed (attempt %d, retry in %.2fs): %s", self.failures, delay, exc
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), delay)
                continue
            self.failures = 0
            await self._housekeeping()
            if published >= self.batch_size:
                continue  # more waiting: no sleep
            if flushing:
                return  # flushed
            if self._stopped.is_set():
                continue  # stop arrived during this pass: one more pass picks up what it missed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
