"""Durable consumers: applied once, retried when transient, parked when poison (real DBs, real NATS)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import pytest_asyncio
import sqlalchemy as sa
from events_support import Names, Payload, applied, count, create_schema, names_for, tables, wait_until

from crm.customer.v1 import events_pb2
from crm_shared.clock import SystemClock
from crm_shared.db.engine import Database
from crm_shared.db.uow import UnitOfWork
from crm_shared.errors import Unavailable
from crm_shared.events.consumer import EventConsumer, list_dead_letters, replay_dead_letter
from crm_shared.events.envelope import EventEnvelope, build_envelope, parse_envelope, serialize_envelope
from crm_shared.events.errors import TransientError
from crm_shared.events.streams import ensure_stream
from crm_shared.ids import new_id
from crm_shared.testing.fixtures_nats import JetStreamHandle


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


class Recorder:
    """A handler that writes an `applied` row per application; `fail` decides per call whether to raise."""

    def __init__(self, fail=None) -> None:
        self.calls = 0
        self.fail = fail

    async def __call__(self, uow: UnitOfWork, envelope: EventEnvelope, payload: Payload) -> None:
        self.calls += 1
        await uow.session.execute(applied.insert().values(event_id=envelope.id, customer=payload.customer))
        if self.fail is not None and (exc := self.fail(self.calls)) is not None:
            raise exc


@pytest_asyncio.fixture(loop_scope="session")
async def make_consumer(db: Database, jetstream: JetStreamHandle, names: Names):
    started: list[EventConsumer] = []

    async def make(handler, *, max_deliver: int = 5, **kw) -> EventConsumer:
        consumer = EventConsumer(
            db,
            tables,
            jetstream.js,
            service="reporting",
            name=f"reporting-{names.service}",
            stream=names.stream.name,
            filter_subjects=[f"crm.{names.service}.>"],
            clock=SystemClock(),
            max_deliver=max_deliver,
            backoff=(0.05, 0.1),
            ack_wait=5,
            fetch_timeout=1,
            **kw,
        )
        consumer.on(Payload, handler)
        await consumer.start()
        started.append(consumer)
        return consumer

    yield make
    for consumer in started:
        await asyncio.wait_for(consumer.stop(), 10)


def envelope_for(names: Names, customer: str = "customers/c1", request_id: str = "req-9") -> EventEnvelope:
    return build_envelope(
        event_id=new_id(),
        payload=Payload(customer=customer),
        source=names.service,
        subject=customer,
        occurred_at=datetime.now(UTC),
        actor_subject="alice",
        request_id=request_id,
    )


async def publish(js, names: Names, envelope: EventEnvelope, msg_id: str | None = None) -> None:
    await js.publish(
        names.subject, serialize_envelope(envelope), headers={"Nats-Msg-Id": msg_id or envelope.id}
    )


async def settled(consumer: EventConsumer, delivered: int) -> bool:
    info = await consumer.js.consumer_info(consumer.stream, consumer.name)
    return info.delivered.stream_seq >= delivered and info.num_ack_pending == 0 and info.num_pending == 0


async def test_event_delivered_twice_is_applied_once(
    db, jetstream: JetStreamHandle, names: Names, make_consumer
) -> None:
    handler = Recorder()
    consumer = await make_consumer(handler)
    envelope = envelope_for(names)
    await publish(jetstream.js, names, envelope)
    await publish(jetstream.js, names, envelope, msg_id=f"{envelope.id}-again")  # a second copy in the stream
    await wait_until(lambda: settled(consumer, 2))
    assert handler.calls == 1
    assert await count(db, applied) == 1
    assert await count(db, tables.inbox, tables.inbox.c.consumer == consumer.name) == 1
    assert await list_dead_letters(db, tables) == []


async def test_transient_error_is_retried_and_applied_on_a_later_delivery(
    db, jetstream: JetStreamHandle, names: Names, make_consumer
) -> None:
    errors = [TransientError("db busy"), Unavailable("customer service down")]
    handler = Recorder(fail=lambda call: errors[call - 1] if call <= len(errors) else None)
    consumer = await make_consumer(handler)
    await publish(jetstream.js, names, envelope_for(names))
    await wait_until(lambda: settled(consumer, 1))
    assert handler.calls == 3
    assert await count(db, applied) == 1  # the failed attempts' rows were rolled back
    assert await list_dead_letters(db, tables) == []


async def test_poison_is_dead_lettered_once_and_can_be_replayed(
    db, jetstream: JetStreamHandle, names: Names, make_consumer
) -> None:
    broken = [True]
    handler = Recorder(fail=lambda _: ValueError("cannot map tier 99") if broken[0] else None)
    consumer = await make_consumer(handler)
    envelope = envelope_for(names)
    await publish(jetstream.js, names, envelope)
    await jetstream.js.publish(
        names.subject, b"\xff\x00 not an envelope", headers={"Nats-Msg-Id": "garbage-1"}
    )
    await wait_until(lambda: settled(consumer, 2))
    await asyncio.sleep(0.3)  # a nak'd message would come back within the 0.05-0.1 s backoff
    assert handler.calls == 1
    info = await jetstream.js.consumer_info(consumer.stream, consumer.name)
    assert info.num_redelivered == 0 and info.num_ack_pending == 0
    letters = await list_dead_letters(db, tables, consumer=consumer.name)
    assert [(d.event_id, d.deliveries) for d in letters] == [(envelope.id, 1), ("garbage-1", 1)]
    assert "ValueError: cannot map tier 99" in letters[0].error
    assert "EnvelopeError" in letters[1].error
    assert parse_envelope(letters[0].data).id == envelope.id
    assert await count(db, applied) == 0

    broken[0] = False  # the operator deploys a fix, then replays
    await replay_dead_letter(db, tables, jetstream.js, letters[0].id)
    await wait_until(lambda: _count_is(db, applied, 1))
    assert handler.calls == 2
    [replayed, _] = await list_dead_letters(db, tables)
    assert replayed.replayed_at is not None


async def _count_is(db, table, expected: int) -> bool:
    return await count(db, table) == expected


async def test_transient_errors_give_up_after_max_deliver(
    db, jetstream: JetStreamHandle, names: Names, make_consumer
) -> None:
    handler = Recorder(fail=lambda _: TransientError("still down"))
    consumer = await make_consumer(handler, max_deliver=3)
    await publish(jetstream.js, names, envelope_for(names))
    await wait_until(lambda: _count_is(db, tables.dead_letters, 1))
    await wait_until(lambda: settled(consumer, 1))
    assert handler.calls == 3
    [letter] = await list_dead_letters(db, tables)
    assert letter.deliveries == 3 and "still down" in letter.error


async def test_handler_events_share_its_transaction(
    db, jetstream: JetStreamHandle, names: Names, make_consumer
) -> None:
    async def handler(uow: UnitOfWork, envelope: EventEnvelope, payload: Payload) -> None:
        uow.emit("crm.reporting.view.refreshed", events_pb2.CustomerUpdated(), resource=payload.customer)
        if payload.customer == "customers/poison":
            raise KeyError("no such view")

    consumer = await make_consumer(handler)
    await publish(jetstream.js, names, envelope_for(names, "customers/ok", request_id="req-ok"))
    await publish(jetstream.js, names, envelope_for(names, "customers/poison"))
    await wait_until(lambda: settled(consumer, 2))
    async with db.read_session() as s:
        rows = (await s.execute(sa.select(tables.outbox.c.envelope))).scalars().all()
    [emitted] = [parse_envelope(r) for r in rows]
    assert emitted.subject == "customers/ok"
    assert emitted.source == "reporting" and emitted.actor.subject == "service:reporting"
    assert emitted.request_id == "req-ok"  # correlation carried from the consumed event


async def test_unknown_event_types_are_acked_and_stop_is_prompt(
    db, jetstream: JetStreamHandle, names: Names, make_consumer
) -> None:
    handler = Recorder()
    consumer = await make_consumer(handler)
    other = build_envelope(
        event_id=new_id(),
        payload=events_pb2.ContactDeleted(contact="c"),
        source="x",
        subject="c",
        occurred_at=datetime.now(UTC),
        actor_subject="alice",
    )
    await publish(jetstream.js, names, other)
    await wait_until(lambda: settled(consumer, 1))
    assert handler.calls == 0
    await asyncio.wait_for(consumer.stop(), 3)  # idle in fetch: must not wait for the fetch timeout


@pytest.mark.parametrize("batch", [1, 50])
async def test_restarted_consumer_resumes_from_its_durable(
    db, jetstream: JetStreamHandle, names: Names, make_consumer, batch: int
) -> None:
    handler = Recorder()
    consumer = await make_consumer(handler, batch=batch)
    first = [envelope_for(names, f"customers/{i}") for i in range(5)]
    for e in first:
        await publish(jetstream.js, names, e)
    await wait_until(lambda: settled(consumer, 5))
    await consumer.stop()
    for e in [envelope_for(names, f"customers/{i}") for i in range(5, 8)]:
        await publish(jetstream.js, names, e)
    again = await make_consumer(handler, batch=batch, max_deliver=3)
    await wait_until(lambda: settled(again, 8))
    assert handler.calls == 8 and await count(db, applied) == 8
    # The existing durable was updated to the new config, not silently kept as it was.
    info = await jetstream.js.consumer_info(again.stream, again.name)
    assert info.config.max_deliver == 3
