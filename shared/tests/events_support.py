"""Shared by the outbox/consumer tests: a tiny schema, stream helpers, and a producer run as a subprocess.

As a script (`python events_support.py produce <db-url> <nats-url> <service> <count> <relay>`) it
commits <count> notes with one event each, prints "committed", and then, if <relay> is "1",
runs an outbox relay until killed: the parent SIGKILLs it to simulate a crash.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from crm.customer.v1 import events_pb2
from crm_shared.clock import SystemClock
from crm_shared.db.engine import Database
from crm_shared.db.tables import PlatformTables, platform_tables
from crm_shared.db.uow import UnitOfWork, UnitOfWorkFactory
from crm_shared.events.streams import StreamSpec, stream_for_service

metadata = sa.MetaData()
tables: PlatformTables = platform_tables(metadata)
notes = sa.Table(
    "notes",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("text", sa.String(200), nullable=False),
)
# What consumer handlers write: one row per application, so "applied twice" is visible.
applied = sa.Table(
    "applied",
    metadata,
    sa.Column("n", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("customer", sa.String(200), nullable=False),
)

Payload = events_pb2.CustomerDeleted


async def create_schema(db: Database) -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)


@dataclass
class Names:
    service: str
    stream: StreamSpec

    @property
    def subject(self) -> str:
        return f"crm.{self.service}.customer.deleted"


def names_for(suffix: str) -> Names:
    service = f"t{suffix}"
    return Names(service, stream_for_service(service))


async def add_note(uow: UnitOfWork, note_id: str, subject: str) -> str:
    await uow.session.execute(notes.insert().values(id=note_id, text=f"note {note_id}"))
    return uow.emit(
        subject, Payload(customer=f"customers/{note_id}", owner="alice"), resource=f"notes/{note_id}"
    )


async def stream_messages(js: Any, stream: str) -> list[Any]:
    """Every message in the stream (RawStreamMsg: .subject, .data, .headers)."""
    info = await js.stream_info(stream)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        if info.state.messages == 0:
            break
        out.append(await js.get_msg(stream, seq))
    return out


async def wait_until(predicate: Any, within: float = 10.0, interval: float = 0.02) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)


async def count(db: Database, table: sa.Table, *where: Any) -> int:
    async with db.read_session() as session:
        return (
            await session.execute(sa.select(sa.func.count()).select_from(table).where(*where))
        ).scalar_one()


async def _produce(db_url: str, nats_url: str, service: str, n: int, run_relay: bool) -> None:
    import nats

    from crm_shared.events.relay import OutboxRelay
    from crm_shared.ids import new_id

    db = await Database.connect(db_url)
    names = Names(service, stream_for_service(service))
    factory = UnitOfWorkFactory(db, tables, service=service, clock=SystemClock())
    async with factory() as uow:
        for _ in range(n):
            await add_note(uow, new_id(), names.subject)
        await uow.commit()
    print("committed", flush=True)
    if run_relay:
        nc = await nats.connect(nats_url)
        relay = OutboxRelay(db, tables, nc.jetstream(), clock=SystemClock(), service=service, batch_size=10)
        await relay.start()
        print("relaying", flush=True)
    await asyncio.sleep(3600)  # until SIGKILL


async def _trace_flow(db_url: str, nats_url: str, service: str) -> None:
    """RPC span → commit → relay publish → consumer: prints each finished span as
    `name kind trace_id span_id parent_span_id`. Run in its own process because it installs the
    global tracer provider."""
    import nats
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from crm_shared.events.consumer import EventConsumer
    from crm_shared.events.relay import OutboxRelay
    from crm_shared.events.streams import ensure_stream

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    db = await Database.connect(db_url)
    await create_schema(db)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    names = Names(service, stream_for_service(service))
    await ensure_stream(js, names.stream)
    factory = UnitOfWorkFactory(db, tables, service=service, clock=SystemClock())
    with trace.get_tracer("test").start_as_current_span("rpc CreateNote"):
        async with factory() as uow:
            await add_note(uow, "n1", names.subject)
            await uow.commit()
    await OutboxRelay(db, tables, js, clock=SystemClock(), service=service).publish_pending()
    handled = asyncio.Event()

    async def handler(uow: UnitOfWork, envelope: Any, payload: Any) -> None:
        handled.set()

    consumer = EventConsumer(
        db, tables, js, service="reporting", name=f"trace-{service}", stream=names.stream.name,
        filter_subjects=[f"crm.{service}.>"], clock=SystemClock(),
    )  # fmt: skip
    consumer.on(Payload, handler)
    await consumer.start()
    await asyncio.wait_for(handled.wait(), 10)
    await consumer.stop()
    for span in exporter.get_finished_spans():
        parent = format(span.parent.span_id, "016x") if span.parent else "-"
        ctx = span.context
        print(span.name, span.kind.name, format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"), parent)
    await nc.close()
    await db.dispose()


if __name__ == "__main__":
    if sys.argv[1] == "produce":
        _, _, db_url, nats_url, service, n, relay_flag = sys.argv
        asyncio.run(_produce(db_url, nats_url, service, int(n), relay_flag == "1"))
    elif sys.argv[1] == "trace-flow":
        _, _, db_url, nats_url, service = sys.argv
        asyncio.run(_trace_flow(db_url, nats_url, service))
