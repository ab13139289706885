"""Alembic environment for the reporting database (applied at start in dev, by a Job in k8s)."""

from alembic import context

from crm_reporting.adapters.tables import metadata
from crm_shared.db.migrations import run_alembic_env

run_alembic_env(context, metadata)
