"""A service's whole alembic env.py: the shared helper does the async/URL/lock work."""

from alembic import context

from crm_shared.db.migrations import run_alembic_env

run_alembic_env(context, None)
