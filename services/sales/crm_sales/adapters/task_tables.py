"""Tasks (on the sales `metadata`); created by migration 0005.

priority is stored as its number (1 low .. 4 urgent) so `order_by priority` sorts by urgency.
`reminder_time` is what the caller set; `remind_before_seconds` the relative form; the
effective moment is derived by the domain and lives in the durable `timers` table.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_sales.adapters.tables import metadata
from crm_shared.db.types import UtcDateTime

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("due_time", UtcDateTime(), nullable=False),
    sa.Column("remind_before_seconds", sa.BigInteger, nullable=True),
    sa.Column("reminder_time", UtcDateTime(), nullable=True),
    sa.Column("assignee", sa.String(128), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("related", sa.String(128), nullable=False, server_default=""),
    sa.Column("done", sa.Boolean, nullable=False),
    sa.Column("done_time", UtcDateTime(), nullable=True),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("team", sa.String(128), nullable=False, server_default=""),
    sa.Column("create_time", UtcDateTime(), nullable=False),
    sa.Column("update_time", UtcDateTime(), nullable=False),
    sa.Column("row_version", sa.Integer, nullable=False),
    # The agenda: a user's open tasks by due time; scope-narrowed lists.
    sa.Index("ix_tasks_assignee_open_due", "assignee", "done", "due_time", "id"),
    sa.Index("ix_tasks_owner_due", "owner", "due_time", "id"),
    sa.Index("ix_tasks_team_due", "team", "due_time", "id"),
    sa.Index("ix_tasks_due", "due_time", "id"),
    sa.Index("ix_tasks_related", "related"),
)
