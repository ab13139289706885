"""Behaviour events: compact event rows, one summary row per customer, contact blind indexes.

Events are append-only and high-volume, so a row is small: an integer key, the
type as a small integer, the matched customer (and contact), and only the
properties that were given, under short keys (`properties`, NULL when none).
The sender's (source, event_id) is unique: re-sent events are not stored twice.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_customer.adapters.tables import metadata
from crm_customer.domain.behavior import EVENT_TYPES
from crm_shared.db.types import UtcDateTime

# INTEGER PRIMARY KEY is SQLite's rowid (no separate index); BIGSERIAL-like identity on PostgreSQL.
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

behavior_events = sa.Table(
    "behavior_events",
    metadata,
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("event_id", sa.String(128), nullable=False),
    sa.Column(
        "customer_id", sa.String(36), sa.ForeignKey("customers.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("contact_id", sa.String(36), nullable=True),
    sa.Column("type", sa.SmallInteger, nullable=False),
    sa.Column("occur_time", UtcDateTime(), nullable=False),
    sa.Column("properties", sa.JSON, nullable=True),
    sa.UniqueConstraint("source", "event_id", name="uq_behavior_events_source_event"),
    # ListBehaviorEvents: a customer's events newest first (keyset on occur_time, seq).
    sa.Index("ix_behavior_events_customer_time", "customer_id", "occur_time", "seq"),
)


def _type_columns() -> list[sa.Column]:
    columns: list[sa.Column] = []
    for name in EVENT_TYPES.values():
        columns.append(sa.Column(f"n_{name}", sa.BigInteger, nullable=False, server_default="0"))
        columns.append(sa.Column(f"last_{name}", UtcDateTime(), nullable=True))
    return columns


# One row per customer, counters bumped in the transaction that stores the events.
behavior_summaries = sa.Table(
    "behavior_summaries",
    metadata,
    sa.Column(
        "customer_id", sa.String(36), sa.ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("total_events", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("last_activity_time", UtcDateTime(), nullable=True),
    *_type_columns(),
)

# Purchase value per customer and currency (amounts in different currencies never add up).
behavior_purchase_totals = sa.Table(
    "behavior_purchase_totals",
    metadata,
    sa.Column(
        "customer_id", sa.String(36), sa.ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("currency_code", sa.String(3), primary_key=True),
    sa.Column("amount_minor", sa.BigInteger, nullable=False, server_default="0"),
)

# Blind indexes of contacts' emails and phones (kind, HMAC of the normalized value), so behaviour
# events can be matched to a contact. Not unique: two contacts may share a mailbox; such a match is
# ambiguous and reported, never guessed. The contact's customer is read from contacts at match time
# (a merge moves contacts to the survivor).
contact_identifiers = sa.Table(
    "contact_identifiers",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column(
        "contact_id", sa.String(36), sa.ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Index("ix_contact_identifiers_contact", "contact_id"),
)
