"""Transactional outbox → JetStream: nothing lost, nothing published twice (real DBs, real NATS)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
import sqlalchemy as sa
from events_support import (
    Names,
    Payload,
    add_note,
    count,
    create_schema,
    names_for,
    notes,
    stream_messages,
    tables,
    wait_until,
)
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from crm_shared.clock import ManualClock, SystemClock
from crm_shared.db.engine import Database
from crm_shared.db.uow import UnitOfWorkFactory
from crm_shared.events.envelope import parse_envelope, unpack_payload
from crm_shared.events.relay import OutboxRelay
from crm_shared.events.streams import ensure_stream, stream_for_service
from crm_shared.ids import new_id
from crm_shared.principal import Principal, reset_principal, set_principal
from crm_shared.testing.fixtures_nats import JetStreamHandle, NatsServer

SUPPORT = Path(__file__).parent / "events_support.py"


@pytest_asyncio.fixture(loop_scope="session")
async def db(database_url: str):
    database = await Database.connect(database_url)
    await create_schema(database)
    yield database
    await database.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def names(jetstream: JetStreamHandle) -> Names:
    names = names_for(jetstream.suffix)
    await ensure_stream(jetstream.js, names.stream)
    return names


def make_relay(db: Database, js, names: Names, cls: type[OutboxRelay] = OutboxRelay, **kw) -> OutboxRelay:
    kw.setdefault("clock", SystemClock())
    kw.setdefault("initial_backoff", 0.05)
    kw.setdefault("max_backoff", 0.3)
    kw.setdefault("publish_timeout", 1.0)
    return cls(db, tables, js, service=names.service, **kw)


async def unsent(db: Database) -> int:
    return await count(db, tables.outbox, tables.outbox.c.sent_at.is_(None))


async def test_ensure_stream_is_idempotent_and_uses_file_storage_and_dedupe_window(
    jetstream: JetStreamHandle,
) -> None:
    spec = stream_for_service(f"t{jetstream.suffix}")
    assert spec.name == f"CRM_T{jetstream.suffix.upper()}" and spec.subjects == [f"crm.t{jetstream.suffix}.>"]
    await ensure_stream(jetstream.js, spec)
    info = await ensure_stream(jetstream.js, spec)
    assert str(getattr(info.config.storage, "value", info.config.storage)) == "file"
    assert info.config.duplicate_window == 600
    assert info.config.max_age == 30 * 24 * 3600


async def test_committed_event_is_published_at_once_with_its_id_and_trace(
    db: Database, jetstream: JetStreamHandle, names: Names
) -> None:
    relay = make_relay(db, jetstream.js, names, poll_interval=30)  # only notify() can make it quick
    factory = UnitOfWorkFactory(
        db, tables, service=names.service, clock=SystemClock(), on_commit=relay.notify
    )
    await relay.start()
    parent = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    principal = set_principal(Principal("alice", team="east"))
    try:
        with trace.use_span(NonRecordingSpan(parent)):
            async with factory() as uow:
                event_id = await add_note(uow, "n1", names.subject)
                await uow.commit()
        await wait_until(lambda: _none_unsent(db), within=5)
    finally:
        reset_principal(principal)
        await relay.stop()
    [msg] = await stream_messages(jetstream.js, names.stream.name)
    assert msg.subject == names.subject
    assert msg.headers["Nats-Msg-Id"] == event_id
    assert msg.headers["traceparent"].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    envelope = parse_envelope(msg.data)
    assert (envelope.id, envelope.source, envelope.subject) == (event_id, names.service, "notes/n1")
    assert envelope.actor.subject == "alice"
    assert envelope.traceparent.startswith("00-0af7651916cd43dd8448eb211c80319c-")
    assert unpack_payload(envelope, Payload).customer == "customers/n1"
    async with db.read_session() as s:
        row = (await s.execute(sa.select(tables.outbox))).mappings().one()
    assert row["sent_at"] is not None and row["attempts"] == 1


async def _none_unsent(db: Database) -> bool:
    return await unsent(db) == 0


async def test_rolled_back_work_publishes_nothing(
    db: Database, jetstream: JetStreamHandle, names: Names
) -> None:
    relay = make_relay(db, jetstream.js, names)
    factory = UnitOfWorkFactory(
        db, tables, service=names.service, clock=SystemClock(), on_commit=relay.notify
    )
    with pytest.raises(ValueError):
        async with factory() as uow:
            await add_note(uow, "n1", names.subject)
            raise ValueError("domain rule broken")
    assert await relay.publish_pending() == 0
    assert await count(db, notes) == 0 and await count(db, tables.outbox) == 0
    assert (await jetstream.js.stream_info(names.stream.name)).state.messages == 0


@pytest.mark.parametrize("relay_running", [False, True], ids=["killed-before-relay", "killed-while-relaying"])
async def test_crash_between_commit_and_publish_loses_nothing_and_duplicates_nothing(
    db: Database, jetstream: JetStreamHandle, names: Names, nats_server: NatsServer, relay_running: bool
) -> None:
    n = 300 if relay_running else 1
    proc = await asyncio.create_subprocess_exec(
        *[
            sys.executable,
            str(SUPPORT),
            "produce",
            str(db.engine.url.render_as_string(False)),
            nats_server.url,
            names.service,
            str(n),
            "1" if relay_running else "0",
        ],
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert (await proc.stdout.readline()).strip() == b"committed"
        if relay_running:
            await wait_until(lambda: _stream_count(jetstream.js, names), within=10)
        proc.send_signal(signal.SIGKILL)  # no cleanup, no flush: a crash
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
    published_by_victim = (await jetstream.js.stream_info(names.stream.name)).state.messages
    assert published_by_victim < n or not relay_running  # the kill landed mid-way
    relay = make_relay(db, jetstream.js, names)
    while await relay.publish_pending():
        pass
    messages = await stream_messages(jetstream.js, names.stream.name)
    assert len(messages) == n
    async with db.read_session() as s:
        ids = set((await s.execute(sa.select(tables.outbox.c.event_id))).scalars())
    assert {m.headers["Nats-Msg-Id"] for m in messages} == ids
    assert await unsent(db) == 0


async def _stream_count(js, names: Names) -> int:
    return (await js.stream_info(names.stream.name)).state.messages


class LosesTrackAfterPubAck(OutboxRelay):
    """Crashes after JetStream acknowledged but before the rows are marked sent (first `fail` times)."""

    fail = 1

    async def _mark_sent(self, session, seqs):
        if self.fail:
            self.fail -= 1
            raise ConnectionResetError("database connection lost before marking sent")
        await super()._mark_sent(session, seqs)


async def test_crash_after_puback_republishes_same_id_and_jetstream_drops_it(
    db: Database, jetstream: JetStreamHandle, names: Names
) -> None:
    factory = UnitOfWorkFactory(db, tables, service=names.service, clock=SystemClock())
    async with factory() as uow:
        ids = [await add_note(uow, new_id(), names.subject) for _ in range(3)]
        await uow.commit()
    relay = make_relay(db, jetstream.js, names, cls=LosesTrackAfterPubAck)
    with pytest.raises(ConnectionResetError):
        await relay.publish_pending()
    assert await unsent(db) == 3 and await _stream_count(jetstream.js, names) == 3
    assert await relay.publish_pending() == 3  # same ids again: PubAck duplicate=True
    assert await unsent(db) == 0
    messages = await stream_messages(jetstream.js, names.stream.name)
    assert [m.headers["Nats-Msg-Id"] for m in messages] == ids


async def test_nats_outage_then_restart_publishes_everything_exactly_once(
    db: Database, jetstream: JetStreamHandle, names: Names, nats_server: NatsServer
) -> None:
    relay = make_relay(db, jetstream.js, names, batch_size=7, poll_interval=0.2)
    factory = UnitOfWorkFactory(
        db, tables, service=names.service, clock=SystemClock(), on_commit=relay.notify
    )
    await relay.start()
    try:
        await nats_server.stop()
        for _ in range(4):
            async with factory() as uow:
                for _ in range(5):
                    await add_note(uow, new_id(), names.subject)
                await uow.commit()
        await wait_until(lambda: relay.failures >= 2, within=5)
        async with db.read_session() as s:
            errors = (
                await s.execute(
                    sa.select(tables.outbox.c.last_error, tables.outbox.c.attempts)
                    .order_by(tables.outbox.c.seq)
                    .limit(1)
                )
            ).one()
        assert errors.attempts >= 1 and "nats" in errors.last_error.lower()
        backlog, _age = await relay.refresh_metrics()
        assert backlog == 20
        await nats_server.start()
        await wait_until(lambda: _none_unsent(db), within=15)
    finally:
        await relay.stop()
        if not nats_server.running:
            await nats_server.start()
    messages = await stream_messages(jetstream.js, names.stream.name)
    assert len(messages) == 20
    assert len({m.headers["Nats-Msg-Id"] for m in messages}) == 20


async def test_sent_rows_are_purged_after_retention(
    db: Database, jetstream: JetStreamHandle, names: Names
) -> None:
    clock = ManualClock()
    relay = make_relay(db, jetstream.js, names, clock=clock, retention=timedelta(days=7))
    factory = UnitOfWorkFactory(db, tables, service=names.service, clock=clock)
    async with factory() as uow:
        await add_note(uow, "old", names.subject)
        await uow.commit()
    await relay.publish_pending()
    clock.advance(timedelta(days=6))
    async with factory() as uow:
        await add_note(uow, "unsent", names.subject)
        await uow.commit()
    assert await relay.purge_sent() == 0
    clock.advance(timedelta(days=2))
    assert await relay.purge_sent() == 1
    assert await count(db, tables.outbox) == 1 and await unsent(db) == 1  # unsent rows are never purged


async def test_one_trace_from_request_through_publish_to_consumer(
    tmp_path: Path, jetstream: JetStreamHandle, nats_server: NatsServer
) -> None:
    # In a subprocess: it installs the global OpenTelemetry SDK provider, which this process must not.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(SUPPORT), "trace-flow", f"sqlite+aiosqlite:///{tmp_path}/trace.db",
        nats_server.url, f"t{jetstream.suffix}", stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    spans = {}
    for line in out.decode().splitlines():
        *name, kind, trace_id, span_id, parent = line.split()
        spans[kind] = (" ".join(name), trace_id, span_id, parent)
    rpc, producer, consumer = spans["INTERNAL"], spans["PRODUCER"], spans["CONSUMER"]
    assert producer[0].startswith("publish crm.") and consumer[0].startswith("process crm.")
    assert rpc[1] == producer[1] == consumer[1]  # one trace id
    assert producer[3] == rpc[2] and consumer[3] == producer[2]  # rpc → publish → process
