"""Agenda (待办) read model: one row per reminder, keyed by a stable id (crm_reporting.domain.agenda).

Done reminders stay as tombstones (`done`), so an older event redelivered after the completion
never brings them back; `event_time` is the occurred_at of the newest event applied to the row.
Every column is a function of the events applied (no delivery counter), so a rebuild replaying
the streams in another interleaving ends with identical rows.

An item is for `user`, or — approvals waiting for a role — for every holder of `approver_role`
(in `approver_team` when set) except `owner` (a party never approves its own contract).
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_reporting.adapters.tables import metadata
from crm_shared.db.types import UtcDateTime

agenda_items = sa.Table(
    "agenda_items",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("kind", sa.Integer, nullable=False),
    sa.Column("user", sa.String(128), nullable=False, server_default=""),
    sa.Column("approver_role", sa.String(64), nullable=False, server_default=""),
    sa.Column("approver_team", sa.String(128), nullable=False, server_default=""),
    sa.Column("owner", sa.String(128), nullable=False, server_default=""),
    sa.Column("team", sa.String(128), nullable=False, server_default=""),
    sa.Column("resource", sa.String(200), nullable=False, server_default=""),
    sa.Column("title", sa.String(200), nullable=False, server_default=""),
    sa.Column("customer", sa.String(100), nullable=False, server_default=""),
    sa.Column("due_time", UtcDateTime(), nullable=True),
    sa.Column("currency", sa.String(3), nullable=False, server_default=""),
    sa.Column("amount_minor", sa.BigInteger, nullable=False, server_default="0"),
    # A step number (approvals): a lower step never replaces a higher one.
    sa.Column("step", sa.Integer, nullable=False, server_default="0"),
    sa.Column("create_time", UtcDateTime(), nullable=False),
    sa.Column("event_time", UtcDateTime(), nullable=False),
    sa.Column("done", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_agenda_items_user", "user", "done", "due_time"),
    sa.Index("ix_agenda_items_role", "approver_role", "done"),
    sa.Index("ix_agenda_items_resource", "resource"),
)
