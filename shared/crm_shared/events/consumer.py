"""Durable JetStream consumer: apply each event once, retry what may succeed later, park poison.

For every message: decode the envelope (undecodable → dead letter), find the
handler for its type (none → ack: not ours), then in one unit of work insert
the inbox row (consumer, event id) and run the handler; commit, then ack. A
redelivery of an applied event finds the inbox row and is acked without
running the handler again, so handlers are applied once even though delivery
is at least once. Transient errors nak with a backoff delay; after
max_deliver deliveries, or at once for any other error, the message is
terminated and a dead-letter row (its own transaction) keeps it for an
operator to list and replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from google.protobuf.message import Message
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.dialects import postgresql, sqlite

from crm_shared.clock import Clock
from crm_shared.db.engine import Database
from crm_shared.db.tables import PlatformTables
from crm_shared.db.uow import UnitOfWork, UnitOfWorkFactory
from crm_shared.events.envelope import (
    EnvelopeError,
    EventEnvelope,
    event_type,
    occurred_at,
    parse_envelope,
    unpack_payload,
)
from crm_shared.events.errors import is_transient
from crm_shared.ids import new_id
from crm_shared.observability.propagation import extract
from crm_shared.principal import reset_request_id, set_request_id

log = logging.getLogger(__name__)
tracer = trace.get_tracer("crm_shared.events.consumer")

P = TypeVar("P", bound=Message)
Handler = Callable[[UnitOfWork, EventEnvelope, Any], Awaitable[None]]

CONSUMER_LAG = Histogram(
    "crm_consumer_lag_seconds",
    "Time from an event's occurrence to its application by a consumer",
    ["service", "consumer"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)
CONSUMER_REDELIVERIES = Counter(
    "crm_consumer_redeliveries", "Messages received again after an earlier delivery", ["service", "consumer"]
)
CONSUMER_DEAD_LETTERS = Counter(
    "crm_consumer_dead_letters", "Messages given up on and parked as dead letters", ["service", "consumer"]
)
CONSUMER_PENDING = Gauge(
    "crm_consumer_pending",
    "Messages in the stream not yet delivered to this consumer",
    ["service", "consumer"],
)


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class EventConsumer:
    """A runtime Worker consuming one durable pull consumer on one stream."""

    def __init__(
        self,
        db: Database,
        tables: PlatformTables,
        js: JetStreamContext,
        *,
        service: str,
        name: str,
        stream: str,
        filter_subjects: Sequence[str],
        clock: Clock,
        max_deliver: int = 10,
        ack_wait: float | timedelta = 30.0,
        backoff: Sequence[float] = (1, 2, 5, 10, 30),
        batch: int = 50,
        fetch_timeout: float = 5.0,
        stop_timeout: float = 30.0,
        on_commit: Callable[[], None] | None = None,
        uow_factory: UnitOfWorkFactory | None = None,
    ) -> None:
        if not backoff:
            raise ValueError("backoff needs at least one delay")
        self.db = db
        self.tables = tables
        self.js = js
        self.service = service
        self.name = name
        self.stream = stream
        self.filter_subjects = list(filter_subjects)
        self.clock = clock
        self.max_deliver = max_deliver
        self.ack_wait = _seconds(ack_wait)
        self.backoff = [float(b) for b in backoff]
        self.batch = batch
        self.fetch_timeout = fetch_timeout
        self.stop_timeout = stop_timeout
        self.uow_factory = uow_factory or UnitOfWorkFactory(
            db, tables, service=service, clock=clock, on_commit=on_commit
        )
        self._handlers: dict[str, tuple[type[Message], Handler]] = {}
        self._sub: Any = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._fetching = False
        labels = (service, name)
        self._lag = CONSUMER_LAG.labels(*labels)
        self._redeliveries = CONSUMER_REDELIVERIES.labels(*labels)
        self._dead_letters = CONSUMER_DEAD_LETTERS.labels(*labels)
        self._pending = CONSUMER_PENDING.labels(*labels)
        self._insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert

    def on(
        self, payload_type: type[P], handler: Callable[[UnitOfWork, EventEnvelope, P], Awaitable[None]]
    ) -> None:
        """Register the handler for one payload type (its envelope `type` is the full protobuf name)."""
        key = event_type(payload_type)
        if key in self._handlers:
            raise ValueError(f"{self.name}: a handler for {key} is already registered")
        self._handlers[key] = (payload_type, handler)

    # --- Worker protocol -------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is not None:
            return
        await self.ensure_consumer()
        self._stopping = False
        self._sub = await self.js.pull_subscribe_bind(durable=self.name, stream=self.stream)
        self._task = asyncio.create_task(self._run(), name=f"consumer:{self.name}")

    async def stop(self) -> None:
        """Unsubscribe, let the in-flight message finish (bounded), nak the rest of the batch, return."""
        self._stopping = True
        sub, self._sub = self._sub, None
        task, self._task = self._task, None
        if task is not None and self._fetching:
            task.cancel()
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), self.stop_timeout)
        except asyncio.CancelledError:
            pass
        except TimeoutError:
            log.warning(
                "consumer %s: in-flight message did not finish in %.0fs", self.name, self.stop_timeout
            )
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def consumer_config(self) -> ConsumerConfig:
        single = self.filter_subjects[0] if len(self.filter_subjects) == 1 else None
        return ConsumerConfig(
            name=self.name,
            durable_name=self.name,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_deliver=self.max_deliver,
            filter_subject=single,
            filter_subjects=self.filter_subjects if single is None and self.filter_subjects else None,
            max_ack_pending=max(1000, self.batch * 4),
        )

    async def ensure_consumer(self) -> ConsumerInfo:
        """Create the durable consumer, or update it to this config (nats.py would ignore it otherwise)."""
        return await self.js.add_consumer(self.stream, self.consumer_config())

    # --- loop ------------------------------------------------------------------------------
    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            sub = self._sub
            if sub is None:
                return
            self._fetching = True
            try:
                messages = await sub.fetch(self.batch, timeout=self.fetch_timeout)
            except TimeoutError:
                continue
            except Exception as exc:
                if self._stopping:
                    return
                failures += 1
                delay = min(5.0, 0.1 * 2**failures)
                log.warning("consumer %s: fetch failed (%s), retry in %.1fs", self.name, exc, delay)
                await asyncio.sleep(delay)
                continue
            finally:
                self._fetching = False
            failures = 0
            for index, msg in enumerate(messages):
                if self._stopping:
                    await self._release(messages[index:])
                    return
                try:
                    await self.process(msg)
                except Exception:
                    # Ack/nak failed (connection lost): JetStream redelivers after ack_wait; the inbox
                    # makes that harmless.
                    log.exception("consumer %s: could not settle a message", self.name)

    async def _release(self, messages: Sequence[Msg]) -> None:
        for msg in messages:
            with contextlib.suppress(Exception):
                await msg.nak()

    # --- one message -----------------------------------------------------------------------
    async def process(self, msg: Msg) -> None:
        meta = msg.metadata
        deliveries = meta.num_delivered
        self._pending.set(meta.num_pending)
        if deliveries > 1:
            self._redeliveries.inc()
        try:
            envelope = parse_envelope(msg.data)
        except EnvelopeError as exc:
            await self._dead_letter(msg, None, exc, deliveries)
            return
        registration = self._handlers.get(envelope.type)
        if registration is None:
            log.debug("consumer %s: no handler for %s, acked", self.name, envelope.type)
            await msg.ack()
            return
        payload_type, handler = registration

        carrier = dict(msg.headers or {})
        if "traceparent" not in carrier and envelope.traceparent:
            carrier["traceparent"] = envelope.traceparent
        with tracer.start_as_current_span(
            f"process {msg.subject}",
            context=extract(carrier),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "nats",
                "messaging.destination.name": msg.subject,
                "messaging.message.id": envelope.id,
                "messaging.consumer.group.name": self.name,
                "messaging.nats.delivery_count": deliveries,
            },
        ) as span:
            try:
                payload = unpack_payload(envelope, payload_type)
                applied = await self._apply(envelope, payload, handler)
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                if is_transient(exc) and deliveries < self.max_deliver:
                    delay = self.backoff[min(deliveries, len(self.backoff)) - 1]
                    log.warning(
                        "consumer %s: transient error on %s (delivery %d), retry in %.1fs: %s",
                        self.name,
                        envelope.id,
                        deliveries,
                        delay,
                        exc,
                    )
                    await msg.nak(delay=delay)
                else:
                    await self._dead_letter(msg, envelope, exc, deliveries)
                return
            await msg.ack()
            if applied:
                self._lag.observe(max(0.0, (self.clock.now() - occurred_at(envelope)).total_seconds()))

    async def _apply(self, envelope: EventEnvelope, payload: Message, handler: Handler) -> bool:
        inbox = self.tables.inbox
        token = set_request_id(envelope.request_id)
        try:
            async with self.uow_factory() as uow:
                claim = (
                    self._insert(inbox)
                    .values(
                        consumer=self.name, event_id=envelope.id, event_type=envelope.type, applied_at=uow.now
                    )
                    .on_conflict_do_nothing(index_elements=["consumer", "event_id"])
                    .returning(inbox.c.event_id)
                )
                if (await uow.session.execute(claim)).first() is None:
                    log.debug("consumer %s: %s already applied", self.name, envelope.id)
                    return False
                await handler(uow, envelope, payload)
                await uow.commit()
                return True
        finally:
            reset_request_id(token)

    async def _dead_letter(
        self, msg: Msg, envelope: EventEnvelope | None, exc: BaseException, deliveries: int
    ) -> None:
        headers = dict(msg.headers or {})
        row = {
            "id": new_id(),
            "consumer": self.name,
            "stream_sequence": msg.metadata.sequence.stream,
            "subject": msg.subject,
            "event_id": envelope.id if envelope is not None else headers.get("Nats-Msg-Id"),
            "data": msg.data,
            "headers": headers,
            "error": f"{type(exc).__name__}: {exc}"[:4000],
            "deliveries": deliveries,
            "created_at": self.clock.now(),
        }
        try:
            async with self.db.write_lock, self.db.sessionmaker() as session, session.begin():
                await session.execute(self.tables.dead_letters.insert().values(**row))
        except Exception:
            log.exception(
                "consumer %s: could not record a dead letter; the message will be redelivered", self.name
            )
            await msg.nak(delay=self.backoff[-1])
            return
        await msg.term()
        self._dead_letters.inc()
        log.error(
            "consumer %s: dead-lettered %s after %d deliveries: %s",
            self.name,
            row["event_id"],
            deliveries,
            row["error"],
        )


# --- operator tools -----------------------------------------------------------------------
@dataclass(frozen=True)
class DeadLetter:
    id: str
    consumer: str
    stream_sequence: int | None
    subject: str
    event_id: str | None
    error: str
    deliveries: int
    created_at: datetime
    replayed_at: datetime | None
    data: bytes
    headers: dict[str, str]


async def list_dead_letters(
    db: Database, tables: PlatformTables, consumer: str | None = None, *, include_replayed: bool = True
) -> list[DeadLetter]:
    dl = tables.dead_letters
    query = sa.select(dl).order_by(dl.c.created_at, dl.c.id)
    if consumer is not None:
        query = query.where(dl.c.consumer == consumer)
    if not include_replayed:
        query = query.where(dl.c.replayed_at.is_(None))
    async with db.read_session() as session:
        rows = (await session.execute(query)).mappings().all()
    return [DeadLetter(**{k: row[k] for k in DeadLetter.__dataclass_fields__}) for row in rows]


class DeadLetterNotFound(LookupError):
    pass


async def replay_dead_letter(
    db: Database,
    tables: PlatformTables,
    js: JetStreamContext,
    dead_letter_id: str,
    *,
    clock: Clock | None = None,
) -> str:
    """Publish the parked message again (new Nats-Msg-Id so JetStream accepts it); returns that id.

    Every consumer of the subject sees it again; those that applied the event already skip it
    through their inbox, the one that dead-lettered it gets another go.
    """
    dl = tables.dead_letters
    async with db.read_session() as session:
        row = (await session.execute(sa.select(dl).where(dl.c.id == dead_letter_id))).mappings().first()
    if row is None:
        raise DeadLetterNotFound(dead_letter_id)
    headers = {k: v for k, v in (row["headers"] or {}).items() if not k.startswith("Nats-")}
    msg_id = f"replay-{new_id()}"
    headers["Nats-Msg-Id"] = msg_id
    headers["Crm-Replay-Of"] = dead_letter_id
    await js.publish(row["subject"], row["data"], headers=headers)
    now = clock.now() if clock is not None else datetime.now(UTC)
    async with db.write_lock, db.sessionmaker() as session, session.begin():
        await session.execute(dl.update().where(dl.c.id == dead_letter_id).values(replayed_at=now))
    return msg_id
