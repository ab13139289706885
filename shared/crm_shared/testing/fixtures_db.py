"""Real databases for tests: a fresh SQLite file, and a fresh PostgreSQL database when one is reachable.

`database_url` is parametrized sqlite/postgres, so a test using it runs on both.
PostgreSQL comes from CRM_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres):
each test gets its own `crm_test_<random>` database, dropped afterwards; when the
server is unreachable the postgres variant is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import sqlalchemy as sa

__all__ = [
    "DEFAULT_POSTGRES_URL",
    "database_url",
    "postgres_admin_url",
    "postgres_unreachable_reason",
    "temporary_database_url",
]

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
_unreachable: dict[str, str | None] = {}


def postgres_admin_url() -> str:
    return os.environ.get("CRM_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def _asyncpg_dsn(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def postgres_unreachable_reason(admin_url: str | None = None) -> str | None:
    """None when the server answers, else a one-line reason (checked once per URL per session)."""
    import asyncpg

    admin_url = admin_url or postgres_admin_url()
    if admin_url not in _unreachable:
        try:
            conn = await asyncpg.connect(_asyncpg_dsn(admin_url), timeout=3)
            await conn.close()
            _unreachable[admin_url] = None
        except Exception as exc:
            shown = sa.make_url(admin_url).render_as_string(hide_password=True)
            _unreachable[admin_url] = f"PostgreSQL not reachable at {shown}: {type(exc).__name__}: {exc}"
    return _unreachable[admin_url]


@contextlib.asynccontextmanager
async def temporary_database_url(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh empty database of `kind` ("sqlite" or "postgres"); yields its async URL.

    For postgres it raises pytest.skip when the server is unreachable.
    """
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / f'test-{secrets.token_hex(3)}.db'}"
        return
    if kind != "postgres":
        raise ValueError(f"unknown database kind {kind!r}")
    import asyncpg

    admin_url = postgres_admin_url()
    reason = await postgres_unreachable_reason(admin_url)
    if reason:
        pytest.skip(reason)
    name = f"crm_test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(_asyncpg_dsn(admin_url), timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield (
            sa.make_url(admin_url)
            .set(drivername="postgresql+asyncpg", database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        admin = await asyncpg.connect(_asyncpg_dsn(admin_url), timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest_asyncio.fixture(
    loop_scope="session",
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database URL: once on SQLite, once on PostgreSQL."""
    async with temporary_database_url(request.param, tmp_path) as url:
        yield url
