"""Public pools, their members and the ownership history (same metadata as the customer tables)."""

from __future__ import annotations

import sqlalchemy as sa

from crm_customer.adapters.tables import metadata
from crm_shared.db.types import UtcDateTime

pools = sa.Table(
    "pools",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("display_name", sa.String(200), nullable=False),
    # The managing team: its sales managers may change the pool and assign from it.
    sa.Column("team", sa.String(128), nullable=False, server_default=""),
    # domain.pools.PoolRules as JSON (see adapters.pool_repository for the shape).
    sa.Column("rules", sa.JSON, nullable=False),
    sa.Column("create_time", UtcDateTime(), nullable=False),
    sa.Column("update_time", UtcDateTime(), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Index("ix_pools_create", "create_time", "id"),
    sa.Index("ix_pools_team", "team", "create_time", "id"),
)

# Who may claim from a pool: users by id, or every user of a team.
pool_members = sa.Table(
    "pool_members",
    metadata,
    sa.Column("pool_id", sa.String(36), sa.ForeignKey("pools.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("member_kind", sa.String(8), primary_key=True),  # "user" | "team"
    sa.Column("member", sa.String(128), primary_key=True),
    sa.Index("ix_pool_members_member", "member_kind", "member", "pool_id"),
)

# Every ownership move: claim, assign, release, reclaim, transfer (append-only).
ownership_changes = sa.Table(
    "ownership_changes",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("customer_id", sa.String(36), nullable=False),
    sa.Column("reason", sa.String(16), nullable=False),
    sa.Column("detail_code", sa.String(64), nullable=False, server_default=""),
    sa.Column("from_owner", sa.String(128), nullable=False, server_default=""),
    sa.Column("to_owner", sa.String(128), nullable=False, server_default=""),
    sa.Column("from_team", sa.String(128), nullable=False, server_default=""),
    sa.Column("to_team", sa.String(128), nullable=False, server_default=""),
    sa.Column("pool_id", sa.String(36), nullable=False, server_default=""),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("change_time", UtcDateTime(), nullable=False),
    sa.Index("ix_ownership_changes_customer", "customer_id", "change_time", "id"),
    # Claims per user in the last 24 h; the cooldown of a former owner.
    sa.Index("ix_ownership_changes_to", "to_owner", "reason", "change_time"),
    sa.Index("ix_ownership_changes_from", "from_owner", "customer_id", "change_time"),
)
