"""Import jobs and their per-row ledger (resume, progress, revert).

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "import_jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("source", sa.String(256), nullable=False, server_default=""),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("team", sa.String(128), nullable=False, server_default=""),
        *(
            sa.Column(name, sa.Integer, nullable=False, server_default="0")
            for name in (
                "processed_rows",
                "created_rows",
                "updated_rows",
                "unchanged_rows",
                "rejected_rows",
                "reverted_rows",
                "revert_kept_rows",
            )
        ),
        sa.Column("create_time", TS, nullable=False),
        sa.Column("update_time", TS, nullable=False),
    )
    op.create_index("ix_import_jobs_owner", "import_jobs", ["owner", "create_time"])
    op.create_table(
        "import_job_rows",
        sa.Column(
            "job_id", sa.String(36), sa.ForeignKey("import_jobs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("row_number", sa.BigInteger, primary_key=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("customer_id", sa.String(36), nullable=False, server_default=""),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("checksum", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("import_job_rows")
    op.drop_index("ix_import_jobs_owner", "import_jobs")
    op.drop_table("import_jobs")
