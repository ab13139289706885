"""CSAT surveys (on the servicedesk `metadata`): one row per ticket, created at its first resolution."""

from __future__ import annotations

import sqlalchemy as sa

from crm_servicedesk.adapters.tables import metadata
from crm_shared.db.types import UtcDateTime

csat_surveys = sa.Table(
    "csat_surveys",
    metadata,
    sa.Column("ticket_id", sa.String(36), primary_key=True),
    sa.Column("customer", sa.String(100), nullable=False, server_default=""),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("score", sa.Integer, nullable=False, server_default="0"),
    sa.Column("comment", sa.Text, nullable=False, server_default=""),
    sa.Column("first_contact_resolution", sa.Boolean, nullable=False),
    # The agent and team that resolved the ticket (kept when the ticket moves on).
    sa.Column("assignee", sa.String(128), nullable=False, server_default=""),
    sa.Column("team", sa.String(128), nullable=False, server_default=""),
    sa.Column("open_time", UtcDateTime(), nullable=True),
    sa.Column("answer_time", UtcDateTime(), nullable=True),
    sa.Column("answered_by", sa.String(128), nullable=False, server_default=""),
    sa.Column("update_time", UtcDateTime(), nullable=False),
    sa.Column("row_version", sa.Integer, nullable=False),
    # ListCsatSurveys: answered surveys, newest answer first (optionally per team or agent).
    sa.Index("ix_csat_surveys_state_answer", "state", "answer_time", "ticket_id"),
    sa.Index("ix_csat_surveys_team_answer", "team", "answer_time", "ticket_id"),
    sa.Index("ix_csat_surveys_assignee_answer", "assignee", "answer_time", "ticket_id"),
    sa.Index("ix_csat_surveys_customer", "customer"),
)
