"""Alembic environment for the servicedesk database (applied at start in dev, by a Job in k8s)."""

from alembic import context

from crm_servicedesk.adapters.tables import metadata
from crm_shared.db.migrations import run_alembic_env

run_alembic_env(context, metadata)
