"""python -m crm_contract: serve the contract service until SIGTERM; `migrate` applies its schema.

The commands are crm_shared.service_cli's, shared by every service.
"""

import sys
from pathlib import Path

from crm_shared.service_cli import ServiceCli
from crm_shared.service_cli import main as cli_main

CLI = ServiceCli(
    name="contract",
    settings="crm_contract.config:ContractSettings",
    build="crm_contract.bootstrap:build",
    # The same directory bootstrap.MIGRATIONS names; spelled here so `migrate` and `--help` need
    # no import of the service's gRPC code.
    migrations=Path(__file__).resolve().parent / "migrations",
)


def main(argv: list[str] | None = None) -> int:
    return cli_main(CLI, argv)


if __name__ == "__main__":
    sys.exit(main())
