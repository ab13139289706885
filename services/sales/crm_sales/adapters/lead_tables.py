"""Tables of the leads area (on the sales `metadata`); created by migration 0002.

Phones and emails are stored only as AES-GCM ciphertext sealed with the lead's own
data key (`lead_keys`); `lead_identifiers` holds their blind indexes (HMAC) for
duplicate detection. The index is not unique: a closed (converted/disqualified)
lead may share an email with a new one; open leads are checked by the use case.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_sales.adapters.tables import metadata
from crm_shared.db.types import UtcDateTime

leads = sa.Table(
    "leads",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("display_name", sa.String(200), nullable=False),
    sa.Column("company", sa.String(200), nullable=False, server_default=""),
    sa.Column("title", sa.String(100), nullable=False, server_default=""),
    sa.Column("phones_enc", sa.LargeBinary, nullable=True),
    sa.Column("emails_enc", sa.LargeBinary, nullable=True),
    sa.Column("source_channel", sa.String(16), nullable=False, server_default=""),
    sa.Column("source_platform", sa.String(100), nullable=False, server_default=""),
    sa.Column("external_account_id", sa.String(200), nullable=False, server_default=""),
    sa.Column("campaign_id", sa.String(64), nullable=False, server_default=""),
    sa.Column("evidence", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("disqualify_reason", sa.String(500), nullable=False, server_default=""),
    sa.Column("owner", sa.String(128), nullable=False, server_default=""),
    sa.Column("team", sa.String(128), nullable=False, server_default=""),
    sa.Column("score", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_follow_up_time", UtcDateTime(), nullable=True),
    sa.Column("converted_customer", sa.String(128), nullable=False, server_default=""),
    sa.Column("converted_contact", sa.String(200), nullable=False, server_default=""),
    sa.Column("converted_opportunity", sa.String(128), nullable=False, server_default=""),
    sa.Column("convert_time", UtcDateTime(), nullable=True),
    sa.Column("create_time", UtcDateTime(), nullable=False),
    sa.Column("update_time", UtcDateTime(), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    # Keyset indexes: each list order, optionally narrowed to an owner or a team (data scope).
    sa.Index("ix_leads_create", "create_time", "id"),
    sa.Index("ix_leads_owner_create", "owner", "create_time", "id"),
    sa.Index("ix_leads_team_create", "team", "create_time", "id"),
    sa.Index("ix_leads_status_create", "status", "create_time", "id"),
    sa.Index("ix_leads_campaign", "campaign_id"),  # campaign stats (migration 0006)
)

# One data key per lead (envelope encryption), wrapped by the PII key ring; deleting it shreds the lead.
lead_keys = sa.Table(
    "lead_keys",
    metadata,
    sa.Column("lead_id", sa.String(36), primary_key=True),
    sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
    sa.Column("create_time", UtcDateTime(), nullable=False),
)

lead_identifiers = sa.Table(
    "lead_identifiers",
    metadata,
    sa.Column("lead_id", sa.String(36), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),  # email / phone
    sa.Column("digest", sa.String(64), primary_key=True),  # blind index of the normalized value
    sa.Index("ix_lead_identifiers_digest", "kind", "digest"),
)

lead_assignment_rules = sa.Table(
    "lead_assignment_rules",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("display_name", sa.String(200), nullable=False),
    sa.Column("team", sa.String(128), nullable=False),
    sa.Column("members", sa.JSON, nullable=False),
    sa.Column("source_channels", sa.JSON, nullable=False),
    # Position of the next member: persisted so the rotation continues across restarts.
    sa.Column("next_index", sa.Integer, nullable=False),
    sa.Column("create_time", UtcDateTime(), nullable=False),
    sa.Column("update_time", UtcDateTime(), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Index("ix_lead_assignment_rules_team", "team", "create_time", "id"),
)
