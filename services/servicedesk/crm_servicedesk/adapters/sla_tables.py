"""Business calendars, SLA policies, the SLA clocks of tickets and the escalation log.

Working hours, holidays, conditions, targets and escalation actions are JSON on their rows:
value objects always read and written with their owner. Durations are whole microseconds.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_servicedesk.adapters.tables import metadata
from crm_shared.db.types import UtcDateTime

business_calendars = sa.Table(
    "business_calendars",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("display_name", sa.String(200), nullable=False, server_default=""),
    sa.Column("time_zone", sa.String(64), nullable=False),
    sa.Column("working_hours", sa.JSON, nullable=False),
    sa.Column("holidays", sa.JSON, nullable=False),
    sa.Column("create_time", UtcDateTime(), nullable=False),
    sa.Column("update_time", UtcDateTime(), nullable=False),
    sa.Column("row_version", sa.Integer, nullable=False),
)

sla_policies = sa.Table(
    "sla_policies",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("display_name", sa.String(200), nullable=False, server_default=""),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("condition", sa.JSON, nullable=False),
    sa.Column("calendar_id", sa.String(36), nullable=False),
    sa.Column("targets", sa.JSON, nullable=False),
    sa.Column("warning_percent", sa.Integer, nullable=False),
    sa.Column("escalations", sa.JSON, nullable=False),
    sa.Column("create_time", UtcDateTime(), nullable=False),
    sa.Column("update_time", UtcDateTime(), nullable=False),
    sa.Column("row_version", sa.Integer, nullable=False),
    sa.Index("ix_sla_policies_order", "active", "priority", "create_time", "id"),
    sa.Index("ix_sla_policies_calendar", "calendar_id"),
)

# One row per (ticket, metric): the current cycle of that clock.
ticket_sla_clocks = sa.Table(
    "ticket_sla_clocks",
    metadata,
    sa.Column("ticket_id", sa.String(36), primary_key=True),
    sa.Column("metric", sa.String(24), primary_key=True),
    sa.Column("cycle", sa.Integer, nullable=False),
    sa.Column("policy_id", sa.String(36), nullable=False),
    sa.Column("calendar_id", sa.String(36), nullable=False),
    sa.Column("target_us", sa.BigInteger, nullable=False),
    sa.Column("warning_percent", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("start_time", UtcDateTime(), nullable=False),
    sa.Column("accumulated_us", sa.BigInteger, nullable=False),
    sa.Column("running_since", UtcDateTime(), nullable=True),
    sa.Column("warned_time", UtcDateTime(), nullable=True),
    sa.Column("breached_time", UtcDateTime(), nullable=True),
    sa.Column("breach_due_time", UtcDateTime(), nullable=True),
    sa.Column("achieved_time", UtcDateTime(), nullable=True),
    sa.Index("ix_ticket_sla_clocks_breached", "breached_time"),
)

# An escalation ran for (ticket, metric, cycle): the primary key makes it happen once.
sla_escalations = sa.Table(
    "sla_escalations",
    metadata,
    sa.Column("ticket_id", sa.String(36), primary_key=True),
    sa.Column("metric", sa.String(24), primary_key=True),
    sa.Column("cycle", sa.Integer, primary_key=True),
    sa.Column("policy_id", sa.String(36), nullable=False),
    sa.Column("actions", sa.JSON, nullable=False),
    sa.Column("create_time", UtcDateTime(), nullable=False),
)
