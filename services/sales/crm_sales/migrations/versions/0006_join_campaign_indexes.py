"""Join the area branches (leads, opportunities, products/quotes, tasks/campaigns) and index the
campaign references that GetCampaignStats counts and sums.

Revision ID: 0006
Revises: 0002, 0003, 0004, 0005
Create Date: 2026-11-22
"""

from alembic import op

revision = "0006"
down_revision = ("0002", "0003", "0004", "0005")
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_leads_campaign", "leads", ["campaign_id"])
    op.create_index("ix_opportunities_campaign", "opportunities", ["campaign"])


def downgrade() -> None:
    op.drop_index("ix_opportunities_campaign", "opportunities")
    op.drop_index("ix_leads_campaign", "leads")
