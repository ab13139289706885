"""Behaviour events, per-customer behaviour summaries and purchase totals, contact blind indexes.

contact_identifiers is filled as contacts are created or updated from here on; contacts
written before this revision are not indexed (no release had contacts yet).

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
EVENT_TYPES = (
    "page_view",
    "product_view",
    "cart_add",
    "cart_abandoned",
    "purchase",
    "email_open",
    "email_click",
)


def _customer_fk() -> sa.ForeignKey:
    return sa.ForeignKey("customers.id", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "behavior_events",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("customer_id", sa.String(36), _customer_fk(), nullable=False),
        sa.Column("contact_id", sa.String(36), nullable=True),
        sa.Column("type", sa.SmallInteger, nullable=False),
        sa.Column("occur_time", TS, nullable=False),
        sa.Column("properties", sa.JSON, nullable=True),
        sa.UniqueConstraint("source", "event_id", name="uq_behavior_events_source_event"),
    )
    op.create_index(
        "ix_behavior_events_customer_time", "behavior_events", ["customer_id", "occur_time", "seq"]
    )
    type_columns = []
    for name in EVENT_TYPES:
        type_columns.append(sa.Column(f"n_{name}", sa.BigInteger, nullable=False, server_default="0"))
        type_columns.append(sa.Column(f"last_{name}", TS, nullable=True))
    op.create_table(
        "behavior_summaries",
        sa.Column("customer_id", sa.String(36), _customer_fk(), primary_key=True),
        sa.Column("total_events", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_activity_time", TS, nullable=True),
        *type_columns,
    )
    op.create_table(
        "behavior_purchase_totals",
        sa.Column("customer_id", sa.String(36), _customer_fk(), primary_key=True),
        sa.Column("currency_code", sa.String(3), primary_key=True),
        sa.Column("amount_minor", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "contact_identifiers",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column(
            "contact_id", sa.String(36), sa.ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
        ),
    )
    op.create_index("ix_contact_identifiers_contact", "contact_identifiers", ["contact_id"])


def downgrade() -> None:
    op.drop_table("contact_identifiers")
    op.drop_table("behavior_purchase_totals")
    op.drop_table("behavior_summaries")
    op.drop_index("ix_behavior_events_customer_time", "behavior_events")
    op.drop_table("behavior_events")
