"""Durable timers: "do X at time T" that survives restarts, fires once, and commits with its effects.

    await schedule(uow, "pool.reclaim", customer_id, deadline, {"owner": "bob"})   # in a use case
    await cancel(uow, "pool.reclaim", customer_id)

    scheduler = TimerScheduler(db, tables, uow_factory, clock=clock,
                               handlers={"pool.reclaim": reclaim})   # a runtime Worker

One row per (kind, key) in the service's `timers` table (crm_shared.db.tables):
scheduling again moves the deadline, so a deadline that depends on what happens
(a follow-up, a won deal) is simply re-scheduled in the transaction that changes it.

Each due timer fires in its own unit of work: the row is claimed (FOR UPDATE
SKIP LOCKED on PostgreSQL; on SQLite the unit of work holds the single writer
lock), deleted, and the handler runs — it may write rows, emit outbox events and
schedule further timers (even the same kind/key again) — then everything commits
together. Two schedulers on one database therefore fire a timer exactly once. A
handler that raises rolls all of that back; the row gets attempts+1, last_error
and a backoff delay, and after max_attempts it stays parked (not fired again)
for an operator, counted by crm_timers_failed_total and crm_timers_parked.

The loop sleeps until the earliest due time, capped by poll_interval, and
`notify()` wakes it early: a deadline at 10:00 fires at ~10:00, not in a nightly batch.
Tests with a ManualClock call `run_due()` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from prometheus_client import Counter, Gauge
from sqlalchemy.dialects import postgresql, sqlite

from crm_shared.clock import Clock
from crm_shared.db.engine import Database
from crm_shared.db.tables import PlatformTables
from crm_shared.db.uow import UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)

# Fewest seconds between two passes of the scheduler loop, and between two updates of its gauges.
MIN_PASS_INTERVAL_SECONDS = 0.1
GAUGE_INTERVAL_SECONDS = 5.0

TIMERS_DUE = Gauge("crm_timers_due", "Durable timers due now and not yet fired (backlog)", ["service"])
TIMERS_PARKED = Gauge(
    "crm_timers_parked", "Durable timers that failed max_attempts times and wait for an operator", ["service"]
)
TIMERS_FIRED = Counter("crm_timers_fired_total", "Durable timers fired successfully", ["service", "kind"])
TIMERS_FAILED = Counter("crm_timers_failed_total", "Durable timer handler failures", ["service", "kind"])


@dataclass(frozen=True)
class Timer:
    kind: str
    key: str
    due_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    last_error: str | None = None
    created_at: datetime | None = None


TimerHandler = Callable[[UnitOfWork, Timer], Awaitable[None]]


def _timers_table(uow: UnitOfWork) -> sa.Table:
    # The unit of work's factory knows the service's platform tables (timers among them).
    return uow._tables.timers


def _insert_for(session) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


async def schedule(
    uow: UnitOfWork, kind: str, key: str, due_at: datetime, payload: Mapping[str, Any] | None = None
) -> None:
    """Create or move the (kind, key) timer to `due_at` (timezone-aware), in the caller's transaction.

    Rescheduling resets attempts and last_error: it is a new deadline, not a retry.
    """
    if due_at.tzinfo is None:
        raise ValueError("due_at must be timezone-aware")
    timers = _timers_table(uow)
    values = {
        "kind": kind,
        "key": key,
        "due_at": due_at,
        "payload": dict(payload or {}),
        "attempts": 0,
        "last_error": None,
        "created_at": uow.now,
    }
    insert = _insert_for(uow.session)(timers).values(**values)
    await uow.session.execute(
        insert.on_conflict_do_update(
            index_elements=["kind", "key"],
            set_={
                "due_at": insert.excluded.due_at,
                "payload": insert.excluded.payload,
                "attempts": 0,
                "last_error": None,
            },
        )
    )


async def schedule_unless_pending(
    uow: UnitOfWork, kind: str, key: str, due_at: datetime, payload: Mapping[str, Any] | None = None
) -> None:
    """Create the (kind, key) timer at `due_at` unless one is pending, whose deadline is then kept.

    For debounced work ("re-rank within 10 s of the first change"): `schedule` would move the
    deadline on every change and, under steady load, never fire. The no-op update on conflict
    takes the row's lock, so a scheduler claiming the timer at this moment (FOR UPDATE SKIP
    LOCKED) skips it until this transaction commits and the work it fires sees this
    transaction's rows; one that already claimed (deleted) it makes this insert wait for its
    commit and then create a new timer, so no change is left without a pass after it.
    """
    if due_at.tzinfo is None:
        raise ValueError("due_at must be timezone-aware")
    timers = _timers_table(uow)
    insert = _insert_for(uow.session)(timers).values(
        kind=kind,
        key=key,
        due_at=due_at,
        payload=dict(payload or {}),
        attempts=0,
        last_error=None,
        created_at=uow.now,
    )
    await uow.session.execute(
        insert.on_conflict_do_update(index_elements=["kind", "key"], set_={"due_at": timers.c.due_at})
    )


async def cancel(uow: UnitOfWork, kind: str, key: str) -> bool:
    """Remove the (kind, key) timer if it exists; returns whether one was there."""
    timers = _timers_table(uow)
    result = await uow.session.execute(sa.delete(timers).where(timers.c.kind == kind, timers.c.key == key))
    return bool(result.rowcount)


async def pending(uow: UnitOfWork, kind: str, key: str) -> Timer | None:
    """The (kind, key) timer as this transaction sees it, if one is scheduled."""
    return await get_timer(uow.session, uow._tables, kind, key)


async def get_timer(session, tables: PlatformTables, kind: str, key: str) -> Timer | None:
    """The pending (kind, key) timer, if any (for tests, admin views and deadline displays)."""
    row = (
        (
            await session.execute(
                sa.select(tables.timers).where(tables.timers.c.kind == kind, tables.timers.c.key == key)
            )
        )
        .mappings()
        .first()
    )
    return None if row is None else _timer(row)


def _timer(row: Mapping[str, Any]) -> Timer:
    return Timer(
        kind=row["kind"],
        key=row["key"],
        due_at=row["due_at"],
        payload=dict(row["payload"] or {}),
        attempts=row["attempts"],
        last_error=row["last_error"],
        created_at=row["created_at"],
    )


class TimerScheduler:
    """A runtime Worker firing due timers; start() spawns the loop, notify() wakes it, stop() returns."""

    def __init__(
        self,
        db: Database,
        tables: PlatformTables,
        uow_factory: UnitOfWorkFactory,
        *,
        clock: Clock,
        handlers: Mapping[str, TimerHandler],
        poll_interval: float = 1.0,
        batch: int = 100,
        max_attempts: int = 10,
        initial_backoff: float = 1.0,
        max_backoff: float = 300.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.db = db
        self.timers = tables.timers
        self.uow_factory = uow_factory
        self.clock = clock
        self.handlers = dict(handlers)
        self.poll_interval = poll_interval
        self.batch = batch
        self.max_attempts = max_attempts
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.stop_timeout = stop_timeout
        self.service = uow_factory.service or "unknown"
        self.name = f"timer-scheduler:{self.service}"
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._due = TIMERS_DUE.labels(self.service)
        self._parked = TIMERS_PARKED.labels(self.service)

    # --- Worker protocol -------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is not None:
            return
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), self.stop_timeout)
        except TimeoutError:
            log.warning("%s: a timer handler did not finish within %.1fs", self.name, self.stop_timeout)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def running(self) -> bool:
        return self._task is not None

    def notify(self) -> None:
        """Re-check now (e.g. after a commit that scheduled an earlier deadline)."""
        self._wake.set()

    async def _run(self) -> None:
        failures = 0
        gauges_at = -GAUGE_INTERVAL_SECONDS
        while not self._stopping:
            pass_started = time.monotonic()
            try:
                # The backlog gauges cost two counts (one a scan): a scrape every 15 s does not
                # need them after every pass, and passes follow every commit under load.
                update_gauges = pass_started - gauges_at >= GAUGE_INTERVAL_SECONDS
                await self.run_due(update_gauges=update_gauges)
                if update_gauges:
                    gauges_at = pass_started
                delay = await self._seconds_until_next()
                failures = 0
            except Exception:
                failures += 1
                delay = min(self.poll_interval * 2**failures, 30.0)
                log.exception("%s: pass failed; retry in %.1fs", self.name, delay)
            if self._stopping:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            # Commits wake the loop; under load they come faster than passes are useful. Passes at
            # most every MIN_PASS_INTERVAL_SECONDS: a timer due at once fires that much later.
            rest = MIN_PASS_INTERVAL_SECONDS - (time.monotonic() - pass_started)
            if rest > 0 and not self._stopping:
                await asyncio.sleep(rest)

    async def _seconds_until_next(self) -> float:
        t = self.timers.c
        async with self.db.read_session() as session:
            earliest = (
                await session.execute(sa.select(sa.func.min(t.due_at)).where(t.attempts < self.max_attempts))
            ).scalar_one_or_none()
        if earliest is None:
            return self.poll_interval
        # The clock may be a test's ManualClock: never sleep longer than a poll anyway.
        return max(0.0, min(self.poll_interval, (earliest - self.clock.now()).total_seconds()))

    # --- firing ----------------------------------------------------------------------------
    async def run_due(self, *, update_gauges: bool = True) -> int:
        """Fire every timer due now (each in its own transaction); returns how many fired."""
        fired = 0
        # A (kind, key) is tried at most once per call: a failed one waits for its backoff, and a
        # handler that re-schedules its own timer for "now" fires again on the next pass, not in a loop.
        seen: set[tuple[str, str]] = set()
        while not (self._stopping and self._task is not None):
            candidates = [c for c in await self._due_candidates() if c not in seen]
            if not candidates:
                break
            for kind, key in candidates:
                seen.add((kind, key))
                if await self._fire(kind, key) == "fired":
                    fired += 1
        if update_gauges:
            await self._update_gauges()
        return fired

    async def _due_candidates(self) -> list[tuple[str, str]]:
        t = self.timers.c
        now = self.clock.now()
        async with self.db.read_session() as session:
            rows = (
                await session.execute(
                    sa.select(t.kind, t.key)
                    .where(t.due_at <= now, t.attempts < self.max_attempts)
                    .order_by(t.due_at, t.kind, t.key)
                    .limit(self.batch)
                )
            ).all()
        return [(row.kind, row.key) for row in rows]

    async def _fire(self, kind: str, key: str) -> str:
        t = self.timers.c
        timer: Timer | None = None
        try:
            async with self.uow_factory() as uow:
                claim = sa.select(self.timers).where(
                    t.kind == kind, t.key == key, t.due_at <= uow.now, t.attempts < self.max_attempts
                )
                if self.db.dialect == "postgresql":
                    claim = claim.with_for_update(skip_locked=True)
                row = (await uow.session.execute(claim)).mappings().first()
                if row is None:
                    return "gone"
                timer = _timer(row)
                handler = self.handlers.get(kind)
                if handler is None:
                    raise LookupError(f"no handler registered for timer kind {kind!r}")
                # Delete first: the handler may schedule the same (kind, key) again.
                await uow.session.execute(sa.delete(self.timers).where(t.kind == kind, t.key == key))
                await handler(uow, timer)
                await uow.commit()
        except Exception as exc:
            if timer is None:
                raise
            await self._record_failure(timer, exc)
            return "failed"
        TIMERS_FIRED.labels(self.service, kind).inc()
        return "fired"

    async def _record_failure(self, timer: Timer, exc: BaseException) -> None:
        TIMERS_FAILED.labels(self.service, timer.kind).inc()
        attempts = timer.attempts + 1
        error = f"{type(exc).__name__}: {exc}"[:4000]
        delay = min(self.max_backoff, self.initial_backoff * 2 ** (attempts - 1))
        if attempts >= self.max_attempts:
            log.error(
                "%s: timer %s/%s parked after %d attempts: %s",
                self.name,
                timer.kind,
                timer.key,
                attempts,
                error,
            )
        else:
            log.warning(
                "%s: timer %s/%s failed (attempt %d), retry in %.0fs: %s",
                self.name,
                timer.kind,
                timer.key,
                attempts,
                delay,
                error,
            )
        t = self.timers.c
        async with self.db.write_lock, self.db.sessionmaker() as session, session.begin():
            # Only if nobody re-scheduled it meanwhile: a new deadline wins over a retry.
            await session.execute(
                sa.update(self.timers)
                .where(
                    t.kind == timer.kind,
                    t.key == timer.key,
                    t.due_at == timer.due_at,
                    t.attempts == timer.attempts,
                )
                .values(
                    attempts=attempts,
                    last_error=error,
                    due_at=self.clock.now() + timedelta(seconds=delay),
                )
            )

    async def _update_gauges(self) -> None:
        t = self.timers.c
        now = self.clock.now()
        async with self.db.read_session() as session:
            due = (
                await session.execute(
                    sa.select(sa.func.count()).where(t.due_at <= now, t.attempts < self.max_attempts)
                )
            ).scalar_one()
            parked = (
                await session.execute(sa.select(sa.func.count()).where(t.attempts >= self.max_attempts))
            ).scalar_one()
        self._due.set(due)
        self._parked.set(parked)


async def parked_timers(db: Database, tables: PlatformTables, *, max_attempts: int = 10) -> list[Timer]:
    """Timers that failed max_attempts times (operator view)."""
    t = tables.timers.c
    async with db.read_session() as session:
        rows = (
            (
                await session.execute(
                    sa.select(tables.timers).where(t.attempts >= max_attempts).order_by(t.due_at)
                )
            )
            .mappings()
            .all()
        )
    return [_timer(row) for row in rows]


async def retry_parked(db: Database, tables: PlatformTables, kind: str, key: str, *, clock: Clock) -> bool:
    """Give a parked timer another round of attempts, due now."""
    t = tables.timers.c
    async with db.write_lock, db.sessionmaker() as session, session.begin():
        result = await session.execute(
            sa.update(tables.timers)
            .where(t.kind == kind, t.key == key)
            .values(attempts=0, last_error=None, due_at=clock.now())
        )
    return bool(result.rowcount)
