"""Servicedesk read models (on the reporting `metadata`): tickets, SLA breaches, CSAT answers.

Built only from CRM_SERVICEDESK events. `event_time` is the occurred_at of the newest ticket
snapshot applied: an older snapshot (a nak'd event redelivered late) never overwrites it.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_reporting.adapters.tables import metadata
from crm_shared.db.types import UtcDateTime

service_tickets = sa.Table(
    "service_tickets",
    metadata,
    # "tickets/{ticket}"
    sa.Column("ticket", sa.String(100), primary_key=True),
    sa.Column("customer", sa.String(100), nullable=False, server_default=""),
    sa.Column("assignee", sa.String(128), nullable=False, server_default=""),
    sa.Column("team", sa.String(128), nullable=False, server_default=""),
    sa.Column("status", sa.Integer, nullable=False, server_default="0"),
    sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
    sa.Column("sla_policy", sa.String(100), nullable=False, server_default=""),
    sa.Column("create_time", UtcDateTime(), nullable=True),
    sa.Column("first_response_time", UtcDateTime(), nullable=True),
    sa.Column("resolve_time", UtcDateTime(), nullable=True),
    # Business seconds from creation to the first agent response (from TicketCommented).
    sa.Column("first_response_business_seconds", sa.Float, nullable=True),
    sa.Column("first_response_breached", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("resolution_breached", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("reopen_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("event_time", UtcDateTime(), nullable=True),
    sa.Index("ix_service_tickets_customer", "customer"),
    sa.Index("ix_service_tickets_assignee", "assignee"),
    sa.Index("ix_service_tickets_team", "team"),
)

# One row per breached target (a ticket may breach several metrics, and next-response again).
service_sla_breaches = sa.Table(
    "service_sla_breaches",
    metadata,
    # f"{ticket}:{metric}:{due_time iso}"
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("ticket", sa.String(100), nullable=False),
    sa.Column("customer", sa.String(100), nullable=False, server_default=""),
    sa.Column("metric", sa.Integer, nullable=False),
    sa.Column("assignee", sa.String(128), nullable=False, server_default=""),
    sa.Column("team", sa.String(128), nullable=False, server_default=""),
    sa.Column("due_time", UtcDateTime(), nullable=True),
    sa.Column("breach_time", UtcDateTime(), nullable=False),
    sa.Index("ix_service_sla_breaches_customer", "customer", "breach_time"),
    sa.Index("ix_service_sla_breaches_time", "breach_time"),
)

# One CSAT answer per ticket.
service_csat = sa.Table(
    "service_csat",
    metadata,
    sa.Column("ticket", sa.String(100), primary_key=True),
    sa.Column("customer", sa.String(100), nullable=False, server_default=""),
    sa.Column("assignee", sa.String(128), nullable=False, server_default=""),
    sa.Column("team", sa.String(128), nullable=False, server_default=""),
    sa.Column("score", sa.Integer, nullable=False),
    sa.Column("first_contact_resolution", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("answer_time", UtcDateTime(), nullable=False),
    sa.Index("ix_service_csat_customer", "customer"),
)
