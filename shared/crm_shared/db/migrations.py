"""Alembic, driven from code: a service applies its migrations at start (dev) or from a Job (k8s).

A service's migrations/env.py is three lines:

    from alembic import context
    from crm_shared.db.migrations import run_alembic_env
    from crm_customer.adapters.tables import metadata
    run_alembic_env(context, metadata)

and its start-up calls `await apply_migrations(settings.database_url, MIGRATIONS_DIR)`.
The `alembic` CLI works too (`alembic -x url=... upgrade head`, or CRM_DATABASE_URL).
On PostgreSQL concurrent migrators (several replicas starting at once) are serialized
with an advisory lock; the second finds the schema already at head and does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from crm_shared.db.engine import Database, normalize_url

# pg_advisory_lock key shared by every migrator of a database ("CRMMIGR" in ASCII).
MIGRATION_LOCK_KEY = 0x43524D4D494752


def alembic_config(database_url: str, script_location: str | Path) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    # ConfigParser interpolates %: escape it (URL-encoded passwords contain it).
    cfg.set_main_option(
        "sqlalchemy.url", normalize_url(database_url).render_as_string(False).replace("%", "%%")
    )
    return cfg


@contextlib.asynccontextmanager
async def _migration_lock(db: Database, conn: Any) -> AsyncIterator[None]:
    """PostgreSQL: a session advisory lock. SQLite: an flock on a file beside the database."""
    if db.dialect == "postgresql":
        await conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        await conn.commit()
        try:
            yield
        finally:
            await conn.rollback()
            await conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
            await conn.commit()
        return
    path = Path(db.engine.url.database or "migrations").with_suffix(".migrations.lock")
    handle = await asyncio.to_thread(_lock_file, path)
    try:
        yield
    finally:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()


def _lock_file(path: Path) -> IO[bytes]:
    handle = open(path, "a+b")  # noqa: SIM115 - held until the migration finishes
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    except BaseException:
        handle.close()
        raise
    return handle


async def _run_locked(db: Database, fn: Any, *args: Any) -> Any:
    async with db.engine.connect() as conn, _migration_lock(db, conn):
        try:
            result = await conn.run_sync(fn, *args)
            await conn.commit()
            return result
        finally:
            await conn.rollback()


async def apply_migrations(database_url: str, script_location: str | Path, revision: str = "heads") -> None:
    """Upgrade to `revision` (default: every head, so independent branches of revisions all apply).

    Safe to call from several processes at once.
    """
    cfg = alembic_config(database_url, script_location)
    db = await Database.connect(database_url, pool_size=1)
    try:

        def upgrade(sync_conn: sa.Connection) -> None:
            cfg.attributes["connection"] = sync_conn
            command.upgrade(cfg, revision)

        await _run_locked(db, upgrade)
    finally:
        await db.dispose()


async def current_revision(database_url: str) -> str | None:
    heads = await current_heads(database_url)
    return heads[0] if heads else None


async def current_heads(database_url: str) -> tuple[str, ...]:
    """The revisions the database is stamped with; () for an empty database."""
    db = await Database.connect(database_url, pool_size=1)
    try:
        async with db.engine.connect() as conn:
            return tuple(await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_heads()))
    finally:
        await db.dispose()


def code_heads(database_url: str, script_location: str | Path) -> tuple[str, ...]:
    """The head revisions of a service's migrations directory."""
    from alembic.script import ScriptDirectory

    return tuple(ScriptDirectory.from_config(alembic_config(database_url, script_location)).get_heads())


class SchemaNotCurrent(RuntimeError):
    """The database's schema is not at the code's migration heads."""


async def require_current_schema(database_url: str, script_location: str | Path) -> None:
    """Raise SchemaNotCurrent unless the database is at every head of `script_location`.

    Where a Job migrates (Kubernetes), a server started before it finishes must not serve: it
    fails to start and is restarted, instead of answering every call with "no such table".
    """
    expected = set(code_heads(database_url, script_location))
    current = set(await current_heads(database_url))
    if current != expected:
        raise SchemaNotCurrent(
            f"database schema at {sorted(current) or 'nothing'}, this code needs {sorted(expected)}"
        )


def run_alembic_env(context: Any, target_metadata: sa.MetaData | None) -> None:
    """The body of a service's migrations/env.py (works for apply_migrations and the alembic CLI)."""
    config = context.config

    def configure_kwargs(dialect_name: str) -> dict[str, Any]:
        return {
            "target_metadata": target_metadata,
            "render_as_batch": dialect_name == "sqlite",  # SQLite ALTER TABLE goes through batch mode
            "compare_type": True,
        }

    def run_on(connection: sa.Connection) -> None:
        context.configure(connection=connection, **configure_kwargs(connection.dialect.name))
        with context.begin_transaction():
            context.run_migrations()

    connection = config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return

    url = (
        context.get_x_argument(as_dictionary=True).get("url")
        or os.environ.get("CRM_DATABASE_URL")
        or config.get_main_option("sqlalchemy.url")
    )
    if not url:
        raise RuntimeError("no database URL: pass -x url=..., set CRM_DATABASE_URL or sqlalchemy.url")
    if context.is_offline_mode():
        parsed = normalize_url(url)
        context.configure(
            url=parsed,
            literal_binds=True,
            dialect_opts={"paramstyle": "named"},
            **configure_kwargs(parsed.get_backend_name()),
        )
        with context.begin_transaction():
            context.run_migrations()
        return

    async def online() -> None:
        db = await Database.connect(url, pool_size=1)
        try:
            await _run_locked(db, run_on)
        finally:
            await db.dispose()

    asyncio.run(online())
