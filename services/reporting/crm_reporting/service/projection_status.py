"""Projection status: per consumer what was applied, how far behind it is, and the stream's view.

ProjectionService.ListProjections combines the projection_status row (written in each event's
unit of work), the JetStream consumer info (pending, delivered stream sequence), the consumer's
dead letters and the lag (event time -> applied).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from crm_reporting.adapters.projection_tables import dialect_insert, projection_status

log = logging.getLogger(__name__)


async def record_applied(uow, *, consumer: str, source: str, event_time: datetime) -> None:
    insert = dialect_insert(uow.session, projection_status)
    t = projection_status.c
    await uow.session.execute(
        insert.values(
            consumer=consumer,
            source=source,
            applied_events=1,
            last_event_time=event_time,
            last_applied_time=uow.now,
        ).on_conflict_do_update(
            index_elements=["consumer"],
            set_={
                "applied_events": t.applied_events + 1,
                "last_event_time": insert.excluded.last_event_time,
                "last_applied_time": insert.excluded.last_applied_time,
            },
        )
    )


@dataclass(frozen=True)
class ProjectionState:
    consumer: str
    source: str
    stream: str
    applied_events: int
    last_event_time: datetime | None
    last_applied_time: datetime | None
    lag_seconds: float
    pending: int
    delivered_sequence: int
    # Every message up to this stream sequence was applied (or skipped) and acked.
    acked_sequence: int
    stream_last_sequence: int
    dead_letters: int


async def projection_states(app) -> list[ProjectionState]:
    from crm_reporting.consumers import consumer_name
    from crm_reporting.projection_registry import SOURCES
    from crm_shared.events.streams import stream_for_service

    dead = app.uow_factory.tables.dead_letters
    async with app.db.read_session() as session:
        rows = {r.consumer: r for r in (await session.execute(sa.select(projection_status))).all()}
        dead_counts = dict(
            (
                await session.execute(
                    sa.select(dead.c.consumer, sa.func.count())
                    .where(dead.c.replayed_at.is_(None))
                    .group_by(dead.c.consumer)
                )
            ).all()
        )
    states = []
    for source in SOURCES:
        name = consumer_name(source)
        stream = stream_for_service(source).name
        row = rows.get(name)
        pending = delivered = acked = last_seq = 0
        if app.js is not None:
            try:
                info = await app.js.consumer_info(stream, name)
                pending = int(info.num_pending or 0)
                delivered = int(info.delivered.stream_seq or 0) if info.delivered else 0
                acked = int(info.ack_floor.stream_seq or 0) if info.ack_floor else 0
            except Exception as exc:  # stream or consumer not there yet
                log.debug("consumer info %s: %s", name, exc)
            try:
                stream_info = await app.js.stream_info(stream)
                last_seq = int(stream_info.state.last_seq or 0)
            except Exception as exc:
                log.debug("stream info %s: %s", stream, exc)
        last_event = row.last_event_time if row else None
        last_applied = row.last_applied_time if row else None
        lag = max(0.0, (last_applied - last_event).total_seconds()) if last_event and last_applied else 0.0
        states.append(
            ProjectionState(
                consumer=name,
                source=source,
                stream=stream,
                applied_events=int(row.applied_events) if row else 0,
                last_event_time=last_event,
                last_applied_time=last_applied,
                lag_seconds=lag,
                pending=pending,
                delivered_sequence=delivered,
                acked_sequence=acked,
                stream_last_sequence=last_seq,
                dead_letters=int(dead_counts.get(name, 0)),
            )
        )
    return states
