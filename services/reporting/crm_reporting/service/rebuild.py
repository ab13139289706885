"""Rebuild the read models from the streams: replay every source stream from sequence 1.

    python -m crm_reporting rebuild --database-url URL [--nats-url nats://…] [--force]

Migrates the target database, then reads every source stream from sequence 1 up to its last
sequence at start (js.get_msg per sequence; purged gaps are skipped), merges the streams by
event time (each stream kept in its own order) and applies every event through the same
registry handlers, inbox (consumer reporting-<source>) and projection_status as the live
consumers: the rebuilt tables equal the live ones, and a service started on the rebuilt
database continues where the rebuild stopped (its inbox knows what was applied). A database
with read-model or inbox rows is refused unless `--force`, which empties the read-model
tables, projection_status and the inbox first. After the replay it runs the passes that live
timers would run (the analytics re-rank), since the replay fires no timers.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from crm_reporting.app import ReportingApp
from crm_reporting.config import ReportingSettings
from crm_reporting.projection_registry import SOURCES, build_registry
from crm_shared.access import AccessPolicy
from crm_shared.aip.paging import PageTokenCodec
from crm_shared.clock import Clock, SystemClock
from crm_shared.db.engine import Database
from crm_shared.db.migrations import apply_migrations
from crm_shared.db.uow import UnitOfWorkFactory
from crm_shared.events.envelope import occurred_at, parse_envelope, unpack_payload
from crm_shared.events.streams import stream_for_service

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"

# Tables that are not read models: never compared, never truncated except the inbox with --force.
NOT_READ_MODELS = frozenset(
    {
        "alembic_version",
        "outbox",
        "inbox",
        "timers",
        "idempotency_keys",
        "dead_letters",
        "audit_log",
        "projection_status",
    }
)


class RebuildRefused(RuntimeError):
    """The target database already holds projected data and --force was not given."""


@dataclass
class StreamProgress:
    source: str
    stream: str
    last_sequence: int = 0
    read: int = 0
    applied: int = 0
    skipped: int = 0  # no handler, already applied, or purged
    failed: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class RebuildResult:
    streams: list[StreamProgress]
    seconds: float

    @property
    def events(self) -> int:
        return sum(s.read for s in self.streams)

    @property
    def failed(self) -> int:
        return sum(len(s.failed) for s in self.streams)


async def read_model_tables(db: Database) -> list[str]:
    """Every table of the database that is a read model, sorted by name."""

    def names(sync_conn) -> list[str]:
        return sorted(sa.inspect(sync_conn).get_table_names())

    async with db.engine.connect() as conn:
        tables = await conn.run_sync(names)
    return [t for t in tables if t not in NOT_READ_MODELS]


async def _has_projected_data(db: Database, tables: list[str]) -> bool:
    async with db.engine.connect() as conn:
        for name in [*tables, "inbox", "projection_status"]:
            if (await conn.execute(sa.text(f'SELECT 1 FROM "{name}" LIMIT 1'))).first() is not None:
                return True
    return False


async def _truncate(db: Database, tables: list[str]) -> None:
    async with db.write_lock, db.engine.begin() as conn:
        for name in [*tables, "inbox", "projection_status"]:
            await conn.execute(sa.text(f'DELETE FROM "{name}"'))


def rebuild_app(settings: ReportingSettings, db: Database, js, clock: Clock) -> ReportingApp:
    from crm_reporting.adapters import tables

    return ReportingApp(
        settings=settings,
        db=db,
        uow_factory=UnitOfWorkFactory(db, tables.platform, service="reporting", clock=clock),
        policy=AccessPolicy.load(),
        page_tokens=PageTokenCodec("rebuild-does-not-serve-pages-0123456789abcdef"),
        clock=clock,
        js=js,
    )


async def _suppress_outbox(app: ReportingApp) -> int:
    """Events emitted while replaying (e.g. CustomerScored) were published when the history was
    first projected: mark them sent so a service started on this database does not publish the
    whole history again."""
    outbox = app.uow_factory.tables.outbox
    async with app.db.write_lock, app.db.engine.begin() as conn:
        result = await conn.execute(
            outbox.update().where(outbox.c.sent_at.is_(None)).values(sent_at=app.clock.now())
        )
    return int(result.rowcount or 0)


async def _claim(uow, consumer: str, envelope) -> bool:
    """The inbox row, exactly as the live EventConsumer inserts it; False if already applied."""
    from crm_reporting.adapters.tables import platform

    inbox = platform.inbox
    insert = postgresql.insert if uow.session.bind.dialect.name == "postgresql" else sqlite.insert
    claim = (
        insert(inbox)
        .values(consumer=consumer, event_id=envelope.id, event_type=envelope.type, applied_at=uow.now)
        .on_conflict_do_nothing(index_elements=["consumer", "event_id"])
        .returning(inbox.c.event_id)
    )
    return (await uow.session.execute(claim)).first() is not None


@dataclass
class _Item:
    state: StreamProgress
    consumer: str
    seq: int
    envelope: object
    payload: object
    handler: object


async def _apply_one(app: ReportingApp, item: _Item) -> None:
    try:
        async with app.uow_factory() as uow:
            if await _claim(uow, item.consumer, item.envelope):
                await item.handler(uow, item.envelope, item.payload)
                await uow.commit()
                item.state.applied += 1
            else:
                item.state.skipped += 1
    except Exception as exc:  # reported and counted, like a dead letter
        log.exception("%s seq %d failed", item.state.stream, item.seq)
        item.state.failed.append((item.seq, f"{type(exc).__name__}: {exc}"))


async def _apply_batch(app: ReportingApp, items: list[_Item]) -> None:
    """Several events in one unit of work (one commit); if any fails, each again on its own so
    only the failing one is reported."""
    if len(items) > 1:
        try:
            outcomes = []
            async with app.uow_factory() as uow:
                for item in items:
                    claimed = await _claim(uow, item.consumer, item.envelope)
                    if claimed:
                        await item.handler(uow, item.envelope, item.payload)
                    outcomes.append(claimed)
                await uow.commit()
        except Exception:
            log.info("a batch of %d events failed; applying them one by one", len(items))
        else:
            for item, claimed in zip(items, outcomes, strict=True):
                if claimed:
                    item.state.applied += 1
                else:
                    item.state.skipped += 1
            return
    for item in items:
        await _apply_one(app, item)


class _Cursor:
    """Reads one stream from its first to its last sequence at start, one envelope ahead."""

    def __init__(self, js, state: StreamProgress, first: int) -> None:
        self.js = js
        self.state = state
        self.next_seq = first

    async def next(self):
        """(seq, envelope) of the next decodable message, or None at the end."""
        from nats.js.errors import NotFoundError

        while self.next_seq <= self.state.last_sequence:
            seq, self.next_seq = self.next_seq, self.next_seq + 1
            try:
                msg = await self.js.get_msg(self.state.stream, seq)
            except NotFoundError:
                self.state.skipped += 1
                continue
            self.state.read += 1
            try:
                return seq, parse_envelope(msg.data)
            except Exception as exc:  # undecodable: reported and counted, like a dead letter
                self.state.failed.append((seq, f"{type(exc).__name__}: {exc}"))
        return None


async def _open_streams(app: ReportingApp, js, sources, progress):
    """Per source: its progress, a cursor, its handlers; and the merge heap with every stream's head."""
    from nats.js.errors import NotFoundError

    from crm_reporting.consumers import source_handlers

    registry = build_registry(app)
    results: list[StreamProgress] = []
    heap: list = []
    cursors: list[_Cursor] = []
    handlers: list[dict] = []
    for source in sources:
        stream = stream_for_service(source).name
        state = StreamProgress(source, stream)
        results.append(state)
        try:
            info = await js.stream_info(stream)
        except NotFoundError:
            progress(f"{stream}: no such stream, skipped")
            continue
        state.last_sequence = int(info.state.last_seq or 0)
        cursor = _Cursor(js, state, max(1, int(info.state.first_seq or 1)))
        index = len(cursors)
        cursors.append(cursor)
        handlers.append(source_handlers(registry, source))
        head = await cursor.next()
        if head is not None:
            heapq.heappush(heap, (occurred_at(head[1]), index, head[0], head[1]))
    return results, cursors, handlers, heap


async def replay_streams(
    app: ReportingApp,
    js,
    *,
    sources: tuple[str, ...] = SOURCES,
    progress: Callable[[str], None] = print,
    every: int = 1000,
    batch: int = 100,
) -> RebuildResult:
    """Replay the source streams merged by event time (occurred_at), each stream in its own order.

    The merge applies the history in the order it happened, like the live consumers that run
    side by side; within a stream the sequence order is kept (a stream's events are never
    reordered, even when their occurred_at is not monotonic).
    """
    from crm_reporting.consumers import consumer_name

    started = time.monotonic()
    results, cursors, handlers, heap = await _open_streams(app, js, sources, progress)
    pending: list[_Item] = []
    while heap:
        _, index, seq, envelope = heapq.heappop(heap)
        cursor = cursors[index]
        state = cursor.state
        registration = handlers[index].get(envelope.type)
        if registration is None:
            state.skipped += 1
        else:
            payload_type, handler = registration
            try:
                payload = unpack_payload(envelope, payload_type)
            except Exception as exc:  # reported and counted, like a dead letter
                state.failed.append((seq, f"{type(exc).__name__}: {exc}"))
            else:
                pending.append(_Item(state, consumer_name(state.source), seq, envelope, payload, handler))
        if len(pending) >= batch:
            await _apply_batch(app, pending)
            pending = []
        if state.read % every == 0:
            _report(progress, state, started)
        head = await cursor.next()
        if head is not None:
            # Never before the event just applied: keeps the stream's own order.
            heapq.heappush(heap, (max(occurred_at(head[1]), occurred_at(envelope)), index, head[0], head[1]))
    if pending:
        await _apply_batch(app, pending)
    for state in results:
        _report(progress, state, started)
    return RebuildResult(results, time.monotonic() - started)


def _report(progress: Callable[[str], None], state: StreamProgress, started: float) -> None:
    elapsed = max(time.monotonic() - started, 1e-9)
    total = state.last_sequence or 1
    done = min(100.0, 100.0 * (state.read + state.skipped) / total) if state.last_sequence else 100.0
    progress(
        f"{state.stream}: {done:5.1f}% read {state.read} applied {state.applied} skipped {state.skipped} "
        f"failed {len(state.failed)} ({state.read / elapsed:.0f} events/s)"
    )


async def rebuild(
    database_url: str,
    js,
    *,
    force: bool = False,
    settings: ReportingSettings | None = None,
    clock: Clock | None = None,
    progress: Callable[[str], None] = print,
) -> RebuildResult:
    """Migrate `database_url`, refuse (or with force empty) projected data, replay every stream."""
    await apply_migrations(database_url, MIGRATIONS)
    db = await Database.connect(database_url)
    try:
        tables = await read_model_tables(db)
        if await _has_projected_data(db, tables):
            if not force:
                raise RebuildRefused(
                    "the database already holds projected data; use --force to empty it and rebuild"
                )
            progress("--force: emptying the read-model tables, projection_status and the inbox")
            await _truncate(db, tables)
        settings = settings or ReportingSettings(database_url=database_url)
        app = rebuild_app(settings, db, js, clock or SystemClock())
        result = await replay_streams(app, js, progress=progress)
        # The replay's timers do not fire: run the analytics population pass the live service runs
        # (debounced) after payments, so the rebuilt scores equal the live ones.
        from crm_reporting.service.analytics import final_rerank

        reranked = await final_rerank(app)
        progress(f"analytics: final re-rank changed {reranked} scores")
        suppressed = await _suppress_outbox(app)
        if suppressed:
            progress(
                f"{suppressed} events the handlers emitted again (scores) marked as sent, not re-published"
            )
        progress(
            f"rebuild done: {result.events} events in {result.seconds:.1f}s "
            f"({result.events / max(result.seconds, 1e-9):.0f} events/s), {result.failed} failed"
        )
        return result
    finally:
        await db.dispose()
