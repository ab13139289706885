"""python -m crm_reporting: serve the reporting service until SIGTERM; `migrate` applies its schema
(see crm_shared.service_cli).

python -m crm_reporting rebuild --database-url URL [--nats-url URL] [--force]: replay every
source stream into a fresh database (see crm_reporting.service.rebuild).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from crm_shared.service_cli import Command, ServiceCli
from crm_shared.service_cli import main as cli_main


def _rebuild(argv: list[str]) -> int:
    from crm_reporting.config import ReportingSettings

    defaults = ReportingSettings()
    parser = argparse.ArgumentParser(prog="python -m crm_reporting rebuild")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--nats-url", default=defaults.nats_url)
    parser.add_argument(
        "--force", action="store_true", help="empty a database that already holds read models"
    )
    args = parser.parse_args(argv)

    async def run() -> int:
        import nats

        from crm_reporting.service.rebuild import RebuildRefused, rebuild

        nc = await nats.connect(args.nats_url)
        try:
            result = await rebuild(
                args.database_url,
                nc.jetstream(),
                force=args.force,
                settings=ReportingSettings(database_url=args.database_url, nats_url=args.nats_url),
                progress=lambda line: print(line, flush=True),
            )
        except RebuildRefused as exc:
            print(f"rebuild refused: {exc}", file=sys.stderr)
            return 2
        finally:
            await nc.close()
        return 1 if result.failed else 0

    return asyncio.run(run())


CLI = ServiceCli(
    name="reporting",
    settings="crm_reporting.config:ReportingSettings",
    build="crm_reporting.bootstrap:build",
    # The same directory bootstrap.MIGRATIONS names; spelled here so `migrate` and `--help` need
    # no import of the service's gRPC code.
    migrations=Path(__file__).resolve().parent / "migrations",
    commands={"rebuild": Command("replay every source stream into a fresh read-model database", _rebuild)},
)


def main(argv: list[str] | None = None) -> int:
    return cli_main(CLI, argv)


if __name__ == "__main__":
    sys.exit(main())
