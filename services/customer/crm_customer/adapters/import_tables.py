"""Import jobs and their per-row ledger (migration 0005).

`import_job_rows` is what makes an import resumable: a row is recorded, with a
checksum of its raw values, in the same transaction that applies it, so a
second attempt of the job skips exactly the rows the first one committed.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_customer.adapters.tables import metadata
from crm_shared.db.types import UtcDateTime

import_jobs = sa.Table(
    "import_jobs",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("source", sa.String(256), nullable=False, server_default=""),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("team", sa.String(128), nullable=False, server_default=""),
    sa.Column("processed_rows", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_rows", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated_rows", sa.Integer, nullable=False, server_default="0"),
    sa.Column("unchanged_rows", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rejected_rows", sa.Integer, nullable=False, server_default="0"),
    sa.Column("reverted_rows", sa.Integer, nullable=False, server_default="0"),
    sa.Column("revert_kept_rows", sa.Integer, nullable=False, server_default="0"),
    sa.Column("create_time", UtcDateTime(), nullable=False),
    sa.Column("update_time", UtcDateTime(), nullable=False),
    sa.Index("ix_import_jobs_owner", "owner", "create_time"),
)

import_job_rows = sa.Table(
    "import_job_rows",
    metadata,
    sa.Column("job_id", sa.String(36), sa.ForeignKey("import_jobs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("row_number", sa.BigInteger, primary_key=True),
    sa.Column("outcome", sa.String(16), nullable=False),  # created / updated / unchanged / rejected
    # The customer the row created or updated: history, never re-pointed by a merge.
    sa.Column("customer_id", sa.String(36), nullable=False, server_default=""),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("checksum", sa.String(64), nullable=False),
)
