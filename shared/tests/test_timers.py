"""Durable timers on real SQLite and PostgreSQL: fire at the due time, once, with their effects committed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
import sqlalchemy as sa
from events_support import create_schema, notes, tables
from prometheus_client import REGISTRY

from crm.customer.v1 import events_pb2
from crm_shared.clock import ManualClock, SystemClock
from crm_shared.db.engine import Database
from crm_shared.db.uow import UnitOfWork, UnitOfWorkFactory
from crm_shared.ids import new_id
from crm_shared.timers import (
    Timer,
    TimerScheduler,
    cancel,
    get_timer,
    parked_timers,
    retry_parked,
    schedule,
    schedule_unless_pending,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest_asyncio.fixture(loop_scope="session")
async def db(database_url: str):
    database = await Database.connect(database_url)
    await create_schema(database)
    yield database
    await database.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


def fired(kind: str) -> float:
    return (
        REGISTRY.get_sample_value("crm_timers_fired_total", {"service": "timers-test", "kind": kind}) or 0.0
    )


def failures(kind: str) -> float:
    return (
        REGISTRY.get_sample_value("crm_timers_failed_total", {"service": "timers-test", "kind": kind}) or 0.0
    )


def factory(db: Database, clock) -> UnitOfWorkFactory:
    return UnitOfWorkFactory(db, tables, service="timers-test", clock=clock)


class NoteWriter:
    """A handler that writes a note and emits an event per firing, so 'fired twice' is visible."""

    def __init__(self, fail_times: int = 0) -> None:
        self.calls = 0
        self.fail_times = fail_times

    async def __call__(self, uow: UnitOfWork, timer: Timer) -> None:
        self.calls += 1
        await uow.session.execute(notes.insert().values(id=new_id(), text=f"{timer.kind}:{timer.key}"))
        uow.emit("crm.test.note.created", events_pb2.CustomerDeleted(customer=timer.key), resource=timer.key)
        await asyncio.sleep(0)  # let a concurrent scheduler interleave
        if self.calls <= self.fail_times:
            raise RuntimeError(f"boom {self.calls}")


async def schedule_now(db: Database, clock, kind: str, key: str, due_at: datetime, payload=None) -> None:
    async with factory(db, clock)() as uow:
        await schedule(uow, kind, key, due_at, payload)
        await uow.commit()


async def note_texts(db: Database) -> list[str]:
    async with db.read_session() as session:
        return sorted((await session.execute(sa.select(notes.c.text))).scalars().all())


async def outbox_count(db: Database) -> int:
    async with db.read_session() as session:
        return (await session.execute(sa.select(sa.func.count()).select_from(tables.outbox))).scalar_one()


async def timer_row(db: Database, kind: str, key: str) -> Timer | None:
    async with db.read_session() as session:
        return await get_timer(session, tables, kind, key)


async def test_fires_at_the_due_time_not_before_and_commits_its_effects(db, clock):
    handler = NoteWriter()
    scheduler = TimerScheduler(db, tables, factory(db, clock), clock=clock, handlers={"t.ping": handler})
    await schedule_now(db, clock, "t.ping", "k1", T0 + timedelta(hours=1), {"owner": "bob"})

    clock.set(T0 + timedelta(minutes=59, seconds=59))
    assert await scheduler.run_due() == 0
    assert await note_texts(db) == []

    fired_before = fired("t.ping")
    clock.set(T0 + timedelta(hours=1))  # exactly the deadline: no whole-day rounding
    assert REGISTRY.get_sample_value("crm_timers_due", {"service": "timers-test"}) == 0  # gauge of last pass
    assert await scheduler.run_due() == 1
    assert fired("t.ping") - fired_before == 1
    assert await note_texts(db) == ["t.ping:k1"]
    assert await outbox_count(db) == 1  # the handler's event committed with it
    assert await timer_row(db, "t.ping", "k1") is None
    assert await scheduler.run_due() == 0  # and never again
    assert handler.calls == 1


async def test_rescheduling_moves_the_deadline_and_cancel_removes_it(db, clock):
    handler = NoteWriter()
    scheduler = TimerScheduler(db, tables, factory(db, clock), clock=clock, handlers={"t.ping": handler})
    await schedule_now(db, clock, "t.ping", "moved", T0 + timedelta(hours=1))
    await schedule_now(db, clock, "t.ping", "moved", T0 + timedelta(hours=3), {"v": 2})
    await schedule_now(db, clock, "t.ping", "gone", T0 + timedelta(hours=1))
    async with factory(db, clock)() as uow:
        assert await cancel(uow, "t.ping", "gone") is True
        assert await cancel(uow, "t.ping", "never") is False
        await uow.commit()

    row = await timer_row(db, "t.ping", "moved")
    assert row is not None and row.due_at == T0 + timedelta(hours=3) and row.payload == {"v": 2}

    clock.set(T0 + timedelta(hours=2))
    assert await scheduler.run_due() == 0
    clock.set(T0 + timedelta(hours=3))
    assert await scheduler.run_due() == 1
    assert await note_texts(db) == ["t.ping:moved"]


async def test_two_concurrent_schedulers_fire_each_timer_exactly_once(db, clock, database_url):
    # Two schedulers with their own engines (two connections on PostgreSQL: SKIP LOCKED decides;
    # on SQLite the second engine's writes queue behind the first through the file lock).
    other_db = db if db.is_sqlite else await Database.connect(database_url)
    try:
        for i in range(40):
            await schedule_now(db, clock, "t.ping", f"k{i:02d}", T0 + timedelta(seconds=i))
        first = TimerScheduler(db, tables, factory(db, clock), clock=clock, handlers={"t.ping": NoteWriter()})
        second = TimerScheduler(
            other_db, tables, factory(other_db, clock), clock=clock, handlers={"t.ping": NoteWriter()}
        )
        clock.set(T0 + timedelta(minutes=1))
        counts = await asyncio.gather(first.run_due(), second.run_due())
        assert sum(counts) == 40
        texts = await note_texts(db)
        assert len(texts) == 40 and len(set(texts)) == 40
        assert await outbox_count(db) == 40
    finally:
        if other_db is not db:
            await other_db.dispose()


async def test_a_failing_handler_is_rolled_back_retried_with_backoff_then_succeeds(db, clock):
    handler = NoteWriter(fail_times=2)
    scheduler = TimerScheduler(
        db, tables, factory(db, clock), clock=clock, handlers={"t.ping": handler}, initial_backoff=10
    )
    await schedule_now(db, clock, "t.ping", "flaky", T0)

    assert await scheduler.run_due() == 0
    row = await timer_row(db, "t.ping", "flaky")
    assert row.attempts == 1 and row.last_error == "RuntimeError: boom 1"
    assert row.due_at == T0 + timedelta(seconds=10)
    assert await note_texts(db) == [] and await outbox_count(db) == 0  # nothing of the failed run

    assert await scheduler.run_due() == 0  # backing off: not retried before its time
    clock.advance(timedelta(seconds=10))
    assert await scheduler.run_due() == 0
    row = await timer_row(db, "t.ping", "flaky")
    assert row.attempts == 2 and row.due_at == clock.now() + timedelta(seconds=20)  # exponential

    clock.advance(timedelta(seconds=20))
    assert await scheduler.run_due() == 1
    assert await note_texts(db) == ["t.ping:flaky"]
    assert await timer_row(db, "t.ping", "flaky") is None


async def test_after_max_attempts_a_timer_is_parked_with_its_error_until_an_operator_retries(db, clock):
    handler = NoteWriter(fail_times=2)
    scheduler = TimerScheduler(
        db,
        tables,
        factory(db, clock),
        clock=clock,
        handlers={"t.ping": handler},
        max_attempts=2,
        initial_backoff=1,
    )
    await schedule_now(db, clock, "t.ping", "poison", T0)
    failed_before = failures("t.ping")
    assert await scheduler.run_due() == 0
    clock.advance(timedelta(minutes=5))
    assert await scheduler.run_due() == 0
    clock.advance(timedelta(days=30))
    assert await scheduler.run_due() == 0
    assert handler.calls == 2  # parked: not tried again
    parked = await parked_timers(db, tables, max_attempts=2)
    assert [(p.key, p.attempts, p.last_error) for p in parked] == [("poison", 2, "RuntimeError: boom 2")]
    assert failures("t.ping") - failed_before == 2
    assert REGISTRY.get_sample_value("crm_timers_parked", {"service": "timers-test"}) == 1

    assert await retry_parked(db, tables, "t.ping", "poison", clock=clock)
    assert await scheduler.run_due() == 1
    assert await note_texts(db) == ["t.ping:poison"]


async def test_a_handler_may_schedule_its_own_timer_again(db, clock):
    async def again(uow: UnitOfWork, timer: Timer) -> None:
        await schedule(
            uow, timer.kind, timer.key, timer.due_at + timedelta(days=1), {"n": timer.payload["n"] + 1}
        )

    scheduler = TimerScheduler(db, tables, factory(db, clock), clock=clock, handlers={"t.daily": again})
    await schedule_now(db, clock, "t.daily", "k", T0, {"n": 1})
    assert await scheduler.run_due() == 1
    row = await timer_row(db, "t.daily", "k")
    assert row.due_at == T0 + timedelta(days=1) and row.payload == {"n": 2}


async def test_an_unknown_kind_fails_and_is_kept_rather_than_dropped(db, clock):
    scheduler = TimerScheduler(db, tables, factory(db, clock), clock=clock, handlers={})
    await schedule_now(db, clock, "t.unknown", "k", T0)
    assert await scheduler.run_due() == 0
    row = await timer_row(db, "t.unknown", "k")
    assert row.attempts == 1 and "no handler" in row.last_error


async def test_the_running_worker_fires_a_timer_at_its_time_without_a_batch(db):
    clock = SystemClock()
    handler = NoteWriter()
    scheduler = TimerScheduler(
        db, tables, factory(db, clock), clock=clock, handlers={"t.ping": handler}, poll_interval=0.2
    )
    await scheduler.start()
    try:
        await schedule_now(db, clock, "t.ping", "soon", clock.now() + timedelta(milliseconds=300))
        scheduler.notify()
        for _ in range(50):
            if await note_texts(db):
                break
            await asyncio.sleep(0.1)
        assert await note_texts(db) == ["t.ping:soon"]
    finally:
        await scheduler.stop()
    assert not scheduler.running


async def test_a_debounced_timer_keeps_its_first_deadline_under_steady_changes_and_fires_once(db, clock):
    handler = NoteWriter()
    scheduler = TimerScheduler(db, tables, factory(db, clock), clock=clock, handlers={"t.rerank": handler})
    for minute in range(5):  # a change every minute, each asking for a pass 10 minutes later
        clock.set(T0 + timedelta(minutes=minute))
        async with factory(db, clock)() as uow:
            await schedule_unless_pending(uow, "t.rerank", "all", clock.now() + timedelta(minutes=10))
            await uow.commit()
    assert (await timer_row(db, "t.rerank", "all")).due_at == T0 + timedelta(minutes=10)

    clock.set(T0 + timedelta(minutes=10))
    assert await scheduler.run_due() == 1
    assert await scheduler.run_due() == 0
    assert await note_texts(db) == ["t.rerank:all"]
    # After it fired, the next change asks for a new pass.
    async with factory(db, clock)() as uow:
        await schedule_unless_pending(uow, "t.rerank", "all", clock.now() + timedelta(minutes=10))
        await uow.commit()
    assert (await timer_row(db, "t.rerank", "all")).due_at == T0 + timedelta(minutes=20)
