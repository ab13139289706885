"""Tables every service has beside its own: outbox, inbox, dead letters, idempotency keys, audit log.

A service calls `platform_tables(metadata)` on its own MetaData so they live in
its database and commit in the same transactions as its domain rows. The
service's first alembic migration creates them with `create_platform_tables`.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from crm_shared.db.types import UtcDateTime


@dataclass(frozen=True)
class PlatformTables:
    outbox: sa.Table
    inbox: sa.Table
    dead_letters: sa.Table
    idempotency_keys: sa.Table
    audit_log: sa.Table
    timers: sa.Table


def _columns() -> dict[str, list[sa.SchemaItem]]:
    return {
        # Events written in the same transaction as the change they describe.
        # The relay publishes unsent rows in `seq` order and sets sent_at on PubAck.
        "outbox": [
            sa.Column(
                "seq",
                sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                primary_key=True,
                autoincrement=True,
            ),
            sa.Column("event_id", sa.String(36), nullable=False, unique=True),
            sa.Column("subject", sa.String(200), nullable=False),  # NATS subject
            sa.Column("event_type", sa.String(200), nullable=False),
            sa.Column("envelope", sa.LargeBinary, nullable=False),  # serialized crm.common.v1.EventEnvelope
            sa.Column("traceparent", sa.String(64), nullable=False, server_default=""),
            sa.Column("created_at", UtcDateTime(), nullable=False),
            sa.Column("sent_at", UtcDateTime(), nullable=True),
            sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
            sa.Column("last_error", sa.Text, nullable=True),
            sa.Index("ix_outbox_unsent", "sent_at", "seq"),
        ],
        # Events a consumer has applied: (consumer, event_id) inserted in the handler's transaction.
        "inbox": [
            sa.Column("consumer", sa.String(100), primary_key=True),
            sa.Column("event_id", sa.String(36), primary_key=True),
            sa.Column("event_type", sa.String(200), nullable=False),
            sa.Column("applied_at", UtcDateTime(), nullable=False),
        ],
        # Messages a consumer gave up on (poison): kept for an operator to inspect and replay.
        "dead_letters": [
            sa.Column("id", sa.String(36), primary_key=True),
            sa.Column("consumer", sa.String(100), nullable=False),
            sa.Column("stream_sequence", sa.BigInteger, nullable=True),
            sa.Column("subject", sa.String(200), nullable=False),
            sa.Column("event_id", sa.String(36), nullable=True),
            sa.Column("data", sa.LargeBinary, nullable=False),
            sa.Column("headers", sa.JSON, nullable=False),
            sa.Column("error", sa.Text, nullable=False),
            sa.Column("deliveries", sa.Integer, nullable=False),
            sa.Column("created_at", UtcDateTime(), nullable=False),
            sa.Column("replayed_at", UtcDateTime(), nullable=True),
        ],
        # request_id idempotency: the first response is replayed for a retry with the same id.
        "idempotency_keys": [
            sa.Column("method", sa.String(200), primary_key=True),
            sa.Column("request_id", sa.String(64), primary_key=True),
            sa.Column("principal", sa.String(128), nullable=False),
            sa.Column("fingerprint", sa.String(64), nullable=False),  # sha256 of the request
            sa.Column("response", sa.LargeBinary, nullable=False),
            sa.Column("created_at", UtcDateTime(), nullable=False),
        ],
        # Append-only: who did what to which resource, with field names (never values).
        "audit_log": [
            sa.Column("id", sa.String(36), primary_key=True),
            sa.Column("occurred_at", UtcDateTime(), nullable=False),
            sa.Column("actor", sa.String(128), nullable=False),
            sa.Column("actor_team", sa.String(128), nullable=False, server_default=""),
            sa.Column("action", sa.String(64), nullable=False),  # created / updated / deleted / exported …
            sa.Column("resource", sa.String(200), nullable=False),  # resource name
            sa.Column("fields", sa.JSON, nullable=False),
            sa.Column("request_id", sa.String(64), nullable=False, server_default=""),
            sa.Index("ix_audit_resource", "resource", "occurred_at"),
            sa.Index("ix_audit_time", "occurred_at"),
        ],
        # Durable timers: one row per (kind, key) — scheduling again moves the deadline. A
        # scheduler claims due rows (FOR UPDATE SKIP LOCKED on PostgreSQL), runs the kind's
        # handler and deletes the row in the same transaction as the handler's writes/events.
        "timers": [
            sa.Column("kind", sa.String(64), primary_key=True),  # e.g. "pool.reclaim"
            sa.Column("key", sa.String(200), primary_key=True),  # e.g. the customer id
            sa.Column("due_at", UtcDateTime(), nullable=False),
            sa.Column("payload", sa.JSON, nullable=False),
            sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
            sa.Column("last_error", sa.Text, nullable=True),
            sa.Column("created_at", UtcDateTime(), nullable=False),
            sa.Index("ix_timers_due", "due_at"),
        ],
    }


def platform_tables(metadata: sa.MetaData) -> PlatformTables:
    tables = {name: sa.Table(name, metadata, *cols) for name, cols in _columns().items()}
    return PlatformTables(**tables)


# Platform tables a service's first migration creates; tables added to the platform later
# are created by each existing service's own later migration with create_platform_table.
_INITIAL = ("outbox", "inbox", "dead_letters", "idempotency_keys", "audit_log")


def create_platform_table(op, name: str) -> None:  # alembic `op`
    cols = _columns()[name]
    op.create_table(name, *[c for c in cols if isinstance(c, sa.Column)])
    for index in (c for c in cols if isinstance(c, sa.Index)):
        op.create_index(index.name, name, [str(e) for e in index.expressions])


def create_platform_tables(op, *, include_later: bool = False) -> None:
    """Called from a service's initial migration. A new service passes include_later=True to
    get every platform table at once; the customer service's 0001 predates `timers`."""
    for name in _columns() if include_later else _INITIAL:
        create_platform_table(op, name)


def drop_platform_tables(op, *, include_later: bool = False) -> None:
    for name in reversed(list(_columns()) if include_later else _INITIAL):
        op.drop_table(name)
