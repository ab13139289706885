"""Approval workflows, approvals and their decision history (on the contract `metadata`).

A workflow's steps and an approval's step snapshot are JSON: a small value
object always read with its row. The approval's *current* step is also kept
in plain columns (`step_kind/role/user`) so "awaiting me" is one indexed SQL
query, and the history is a table of its own so "has this person already
approved a step" is a NOT EXISTS, not a scan of JSON.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_contract.adapters.tables import metadata
from crm_shared.db.types import UtcDateTime

approval_workflows = sa.Table(
    "approval_workflows",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("display_name", sa.String(200), nullable=False, server_default=""),
    sa.Column("target", sa.String(16), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False, server_default=""),
    sa.Column("min_amount", sa.BigInteger, nullable=True),
    sa.Column("max_amount", sa.BigInteger, nullable=True),
    sa.Column("contract_types", sa.JSON, nullable=False),
    sa.Column("steps", sa.JSON, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("create_time", UtcDateTime(), nullable=False),
    sa.Column("update_time", UtcDateTime(), nullable=False),
    sa.Column("row_version", sa.Integer, nullable=False),
    sa.Index("ix_approval_workflows_routing", "target", "active", "priority", "create_time", "id"),
)

approvals = sa.Table(
    "approvals",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("target", sa.String(128), nullable=False),
    sa.Column("target_type", sa.String(16), nullable=False),
    sa.Column("workflow_id", sa.String(36), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("steps", sa.JSON, nullable=False),
    sa.Column("current_step", sa.Integer, nullable=False),
    sa.Column("step_kind", sa.String(16), nullable=False, server_default=""),
    sa.Column("step_role", sa.String(64), nullable=False, server_default=""),
    sa.Column("step_user", sa.String(128), nullable=False, server_default=""),
    sa.Column("submitter", sa.String(128), nullable=False),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("team", sa.String(128), nullable=False, server_default=""),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("create_time", UtcDateTime(), nullable=False),
    sa.Column("update_time", UtcDateTime(), nullable=False),
    sa.Column("row_version", sa.Integer, nullable=False),
    sa.Index("ix_approvals_target_create", "target", "create_time", "id"),
    sa.Index("ix_approvals_state_kind", "state", "step_kind", "create_time", "id"),
    sa.Index("ix_approvals_owner_create", "owner", "create_time", "id"),
    sa.Index("ix_approvals_team_create", "team", "create_time", "id"),
    sa.Index("ix_approvals_create", "create_time", "id"),
)

approval_decisions = sa.Table(
    "approval_decisions",
    metadata,
    sa.Column(
        "approval_id", sa.String(36), sa.ForeignKey("approvals.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("seq", sa.Integer, primary_key=True),  # position in the history
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("comment", sa.Text, nullable=False, server_default=""),
    sa.Column("occurred_at", UtcDateTime(), nullable=False),
    sa.Index("ix_approval_decisions_actor", "actor", "action", "approval_id"),
)
