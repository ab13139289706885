"""The command line every service shares: `python -m crm_<svc> [serve | migrate | <own command>]`.

    python -m crm_customer             serve until SIGTERM (what `make run` and the Deployment start)
    python -m crm_customer serve       the same, spelled out
    python -m crm_customer migrate     apply the alembic migrations to head and exit (the k8s Job)
    python -m crm_customer --help

A service's __main__ passes its settings class and build function as "module:attribute"
strings so that nothing heavy (gRPC stubs, SQLAlchemy, the service's own code) is imported
before we know which command runs: `--help` answers at once and `migrate` never loads gRPC.

Exit codes: 0 done; 1 a migration itself failed (traceback printed: that is a bug to fix);
2 bad usage or configuration — unparsable URL, unreachable database, invalid settings — told
in one line, because an operator fixes those, not a developer.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crm_shared.settings import ServiceSettings

EXIT_OK = 0
EXIT_MIGRATION_FAILED = 1
EXIT_CONFIGURATION = 2


class ConfigurationError(Exception):
    """Something an operator must fix (settings, URL, database reachability); one line says what."""


@dataclass(frozen=True)
class Command:
    """An extra subcommand a service adds (e.g. reporting's `rebuild`); `run(argv)` returns the exit code."""

    help: str
    run: Callable[[list[str]], int]


@dataclass(frozen=True)
class ServiceCli:
    name: str  # "customer"; messages start with it
    settings: str  # "crm_customer.config:CustomerSettings"
    build: str  # "crm_customer.bootstrap:build"
    migrations: Path  # the service's alembic script directory
    commands: Mapping[str, Command] = field(default_factory=dict)

    @property
    def prog(self) -> str:
        return f"python -m crm_{self.name}"

    def load_settings(self, **overrides: Any) -> ServiceSettings:
        from pydantic import ValidationError

        settings_class = _resolve(self.settings)
        try:
            return settings_class(**overrides)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}" for item in error.errors()
            )
            raise ConfigurationError(f"invalid settings: {problems}") from None


def _resolve(reference: str) -> Any:
    module_name, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def main(cli: ServiceCli, argv: Sequence[str] | None = None) -> int:
    """Dispatch on the first argument; no argument serves."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else "serve"
    if command in ("-h", "--help", "help"):
        print(_usage(cli))
        return EXIT_OK
    builtin: dict[str, Callable[[ServiceCli, list[str]], int]] = {"serve": _serve, "migrate": _migrate}
    try:
        if command in cli.commands:
            return cli.commands[command].run(args[1:])
        if command in builtin:
            return builtin[command](cli, args[1:])
    except ConfigurationError as error:
        print(f"{cli.name}: {error}", file=sys.stderr)
        return EXIT_CONFIGURATION
    print(f"{cli.prog}: unknown command {command!r}\n\n{_usage(cli)}", file=sys.stderr)
    return EXIT_CONFIGURATION


def _usage(cli: ServiceCli) -> str:
    lines = [
        f"usage: {cli.prog} [COMMAND] [--help]",
        "",
        "commands:",
        "  serve      serve gRPC until SIGTERM (the default)",
        "  migrate    apply the database migrations up to head, then exit",
    ]
    lines += [f"  {name:<10} {command.help}" for name, command in cli.commands.items()]
    lines += [
        "",
        f"Settings come from CRM_{cli.name.upper()}_* environment variables "
        f"(e.g. CRM_{cli.name.upper()}_DATABASE_URL).",
    ]
    return "\n".join(lines)


def _serve(cli: ServiceCli, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{cli.prog} serve", description="Serve gRPC until SIGTERM or SIGINT, then drain and stop."
    )
    parser.parse_args(argv)
    from crm_shared.runtime import run_service

    # run_service reports start-up errors itself and exits 2.
    run_service(cli.load_settings(), _resolve(cli.build))
    return EXIT_OK


def _migrate(cli: ServiceCli, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{cli.prog} migrate",
        description=(
            "Apply the service's alembic migrations up to head and exit 0 (nothing to do when already "
            "there). Safe to run from several processes at once: PostgreSQL serializes migrators with "
            "an advisory lock, SQLite with a file lock."
        ),
    )
    parser.add_argument(
        "--database-url",
        help=f"database to migrate (default: the CRM_{cli.name.upper()}_DATABASE_URL setting)",
    )
    args = parser.parse_args(argv)
    overrides = {"database_url": args.database_url} if args.database_url else {}
    url = cli.load_settings(**overrides).database_url

    import asyncio

    return asyncio.run(_migrate_to_head(cli.name, url, cli.migrations))


async def _migrate_to_head(name: str, url: str, migrations: Path) -> int:
    import traceback

    from alembic.util import CommandError

    from crm_shared.db.migrations import apply_migrations, code_heads

    shown = _shown_url(url)
    heads = code_heads(url, migrations)
    before = await _current_heads(url, shown)
    print(f"{name}: {shown}: schema at {_revisions(before)}, code at {_revisions(heads)}", flush=True)
    try:
        await apply_migrations(url, migrations)
    except CommandError as error:
        # Alembic's own refusals (e.g. a database stamped with a revision this code does not know:
        # a newer image migrated it) are one clear sentence; a traceback would only bury it.
        print(f"{name}: migration refused: {error}", file=sys.stderr)
        return EXIT_MIGRATION_FAILED
    except Exception:
        traceback.print_exc()
        # Every step runs in one transaction (transactional DDL on PostgreSQL and SQLite alike).
        print(f"{name}: migration failed and was rolled back", file=sys.stderr)
        return EXIT_MIGRATION_FAILED
    after = await _current_heads(url, shown)
    if set(after) == set(before):
        print(f"{name}: already at head {_revisions(after)}; nothing to do")
    else:
        print(f"{name}: migrated {_revisions(before)} -> {_revisions(after)}")
    return EXIT_OK


def _shown_url(url: str) -> str:
    """The URL as logs may show it (no password); raises ConfigurationError when it does not parse."""
    from crm_shared.db.engine import normalize_url

    try:
        return normalize_url(url).render_as_string(hide_password=True)
    except Exception as error:  # sqlalchemy.exc.ArgumentError, ValueError: both mean "fix the URL"
        raise ConfigurationError(f"bad database URL: {_first_line(error)}") from None


async def _current_heads(url: str, shown: str) -> tuple[str, ...]:
    """The revisions the database is stamped with; () for an empty database.

    Any failure here is about reaching the database (refused, unknown host, bad password,
    missing database, unwritable SQLite directory), so it becomes one line and exit 2.
    """
    from crm_shared.db.migrations import current_heads

    try:
        return await current_heads(url)
    except Exception as error:
        raise ConfigurationError(
            f"cannot reach the database {shown}: {type(error).__name__}: {_first_line(error)}"
        ) from None


def _revisions(revisions: Sequence[str]) -> str:
    return ", ".join(sorted(revisions)) if revisions else "<empty>"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
