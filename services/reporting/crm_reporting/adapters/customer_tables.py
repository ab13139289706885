"""Customer read model (on the reporting `metadata`): non-personal profile, contacts, follow-ups, behaviour.

Projected from CRM_CUSTOMER only. Rows may be created by any event of the customer (a purchase
can arrive before CustomerCreated): profile columns stay empty until a snapshot arrives.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_reporting.adapters.tables import metadata
from crm_shared.db.types import UtcDateTime

report_customers = sa.Table(
    "report_customers",
    metadata,
    # "customers/{id}"
    sa.Column("customer", sa.String(100), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False, server_default=""),
    # Company name; empty for persons (the customer service leaves it empty in events).
    sa.Column("display_name", sa.String(300), nullable=False, server_default=""),
    sa.Column("industry", sa.String(100), nullable=False, server_default=""),
    sa.Column("source", sa.String(100), nullable=False, server_default=""),
    sa.Column("tier", sa.String(4), nullable=False, server_default=""),
    sa.Column("lifecycle_stage", sa.String(32), nullable=False, server_default=""),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("owner", sa.String(128), nullable=False, server_default=""),
    sa.Column("team", sa.String(128), nullable=False, server_default=""),
    sa.Column("create_time", UtcDateTime(), nullable=True),
    # update_time of the newest snapshot applied (older snapshots are ignored).
    sa.Column("update_time", UtcDateTime(), nullable=True),
    # When owner/team were last set (snapshot update_time or ownership change_time).
    sa.Column("owner_time", UtcDateTime(), nullable=True),
    sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    # Set on the losers of a merge.
    sa.Column("merged_into", sa.String(100), nullable=False, server_default=""),
    sa.Column("last_follow_up_time", UtcDateTime(), nullable=True),
    sa.Column("next_follow_up_time", UtcDateTime(), nullable=True),
    # Behaviour summary.
    sa.Column("purchases", sa.Integer, nullable=False, server_default="0"),
    sa.Column("abandoned_carts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_purchase_time", UtcDateTime(), nullable=True),
    sa.Column("last_activity_time", UtcDateTime(), nullable=True),
    # occurred_at of the newest event applied to this customer (Customer360.as_of).
    sa.Column("event_time", UtcDateTime(), nullable=True),
    sa.Index("ix_report_customers_owner", "owner"),
    sa.Index("ix_report_customers_team", "team"),
    sa.Index("ix_report_customers_next_follow_up", "next_follow_up_time"),
)

# One row per contact (title/primary flag only; no names): the 360 shows the live count.
# A delete arriving before its create leaves a tombstone the create does not undo.
report_contacts = sa.Table(
    "report_contacts",
    metadata,
    sa.Column("contact", sa.String(160), primary_key=True),
    sa.Column("customer", sa.String(100), nullable=False),
    sa.Column("is_primary", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_report_contacts_customer", "customer"),
)

# Follow-ups (type, author and times; never the note).
report_follow_ups = sa.Table(
    "report_follow_ups",
    metadata,
    sa.Column("follow_up", sa.String(200), primary_key=True),
    sa.Column("customer", sa.String(100), nullable=False),
    sa.Column("type", sa.String(32), nullable=False, server_default=""),
    sa.Column("author", sa.String(128), nullable=False, server_default=""),
    sa.Column("follow_up_time", UtcDateTime(), nullable=True),
    sa.Column("next_follow_up_time", UtcDateTime(), nullable=True),
    sa.Index("ix_report_follow_ups_customer", "customer", "follow_up_time"),
    sa.Index("ix_report_follow_ups_next", "next_follow_up_time"),
)
