"""`python -m crm_<svc> migrate`, run the way the Kubernetes migrations Job runs it: a separate
process configured by CRM_<SVC>_DATABASE_URL, on a real SQLite file or PostgreSQL database."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine

from crm_shared.db.engine import normalize_url
from crm_shared.testing.fixtures_db import temporary_database_url

REPO = Path(__file__).resolve().parents[2]
SERVICES = sorted(path.name for path in (REPO / "services").iterdir() if (path / f"crm_{path.name}").is_dir())


def code_heads(service: str) -> set[str]:
    config = Config()
    config.set_main_option(
        "script_location", str(REPO / "services" / service / f"crm_{service}" / "migrations")
    )
    return set(ScriptDirectory.from_config(config).get_heads())


async def database_heads(url: str) -> set[str]:
    engine = create_async_engine(normalize_url(url))
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
            return {row[0] for row in rows}
    finally:
        await engine.dispose()


async def migrate(service: str, url: str, cwd: Path) -> tuple[int, str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CRM_")}
    env[f"CRM_{service.upper()}_DATABASE_URL"] = url
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        f"crm_{service}",
        "migrate",
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


@pytest.mark.parametrize("service", SERVICES)
async def test_migrate_brings_a_fresh_sqlite_database_to_head_and_a_rerun_changes_nothing(
    service: str, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / f'{service}.db'}"

    code, out, err = await migrate(service, url, tmp_path)
    assert code == 0, err
    heads = code_heads(service)
    assert await database_heads(url) == heads
    assert "<empty> -> " in out

    code, out, err = await migrate(service, url, tmp_path)
    assert code == 0, err
    assert await database_heads(url) == heads
    assert "nothing to do" in out


@pytest.mark.postgres
@pytest.mark.parametrize("service", ["customer", "servicedesk"])
async def test_migrate_brings_a_fresh_postgres_database_to_head(service: str, tmp_path: Path) -> None:
    async with temporary_database_url("postgres", tmp_path) as url:
        code, out, err = await migrate(service, url, tmp_path)
        assert code == 0, err
        assert await database_heads(url) == code_heads(service)
        # The password never reaches the Job's log.
        password = sa.make_url(url).password
        assert not password or password not in out


@pytest.mark.postgres
async def test_two_migrators_at_once_on_postgres_both_succeed_and_migrate_once(tmp_path: Path) -> None:
    """Two Job pods (or a Job retried while the first still runs) must not trip over each other."""
    async with temporary_database_url("postgres", tmp_path) as url:
        results = await asyncio.gather(migrate("sales", url, tmp_path), migrate("sales", url, tmp_path))
        assert [code for code, _, _ in results] == [0, 0], [err for _, _, err in results]
        assert await database_heads(url) == code_heads("sales")


async def test_an_unreachable_postgres_is_exit_2_with_one_line_and_no_password(tmp_path: Path) -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    code, out, err = await migrate("contract", "postgresql://crm:s3cret-pw@127.0.0.1:1/crm", tmp_path)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert "contract: cannot reach the database" in err
    assert "s3cret-pw" not in err + out


async def test_a_url_of_an_unsupported_database_is_exit_2_with_one_line(tmp_path: Path) -> None:
    code, _, err = await migrate("reporting", "mysql://crm@db/crm", tmp_path)
    assert code == 2
    assert err.strip().splitlines() == [
        "reporting: bad database URL: unsupported database 'mysql': "
        "use sqlite+aiosqlite or postgresql+asyncpg"
    ]


@pytest.mark.parametrize("service", SERVICES)
def test_migrate_uses_the_migrations_the_service_applies_at_start(service: str) -> None:
    import importlib

    cli = importlib.import_module(f"crm_{service}.__main__").CLI
    bootstrap = importlib.import_module(f"crm_{service}.bootstrap")
    assert cli.migrations == bootstrap.MIGRATIONS


@pytest.mark.parametrize("service", SERVICES)
async def test_help_lists_the_commands_without_loading_grpc_or_the_database_layer(service: str) -> None:
    # What a Job's or a human's `--help` pays for: no gRPC stubs, no SQLAlchemy, no service code.
    probe = (
        "import sys, runpy\n"
        f"sys.argv = ['crm_{service}', '--help']\n"
        "try:\n"
        f"    runpy.run_module('crm_{service}', run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        "heavy = ('grpc', 'sqlalchemy', 'alembic', 'crm_shared.runtime')\n"
        "print('loaded:', sorted(m for m in heavy if m in sys.modules))\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", probe, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    out = stdout.decode()
    assert "migrate" in out and "serve" in out
    assert "loaded: []" in out


async def test_a_server_that_does_not_migrate_refuses_a_database_the_job_has_not_migrated(
    database_url: str, tmp_path: Path
) -> None:
    # In Kubernetes the Job migrates and servers run with MIGRATE_ON_START=false: build_core calls
    # require_current_schema, and a server started before the Job finished exits and is restarted
    # instead of answering "no such table".
    from crm_shared.db.migrations import SchemaNotCurrent, require_current_schema

    migrations = REPO / "services" / "contract" / "crm_contract" / "migrations"
    with pytest.raises(SchemaNotCurrent, match="schema at nothing"):
        await require_current_schema(database_url, migrations)
    code, _, err = await migrate("contract", database_url, tmp_path)
    assert code == 0, err
    await require_current_schema(database_url, migrations)
