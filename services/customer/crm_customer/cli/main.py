"""Argument parsing and the gRPC channel shared by the import and export commands."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

import grpc

from crm_shared.grpc.status import error_details


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m crm_customer.cli", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--target", default="127.0.0.1:8080", help="gateway or service address (gRPC)")
    common.add_argument("--token", default=None, help="bearer token (default: $CRM_TOKEN)")
    commands = root.add_subparsers(dest="command", required=True)

    imp = commands.add_parser(
        "import",
        parents=[common],
        help="import customers from a CSV file",
        description="Streams the rows of a CSV file to ImportCustomers. Run it again with the same "
        "--job-id to resume an interrupted import: rows already applied are skipped. "
        "Exit status 1 when some rows were rejected (see --report), 2 on errors.",
    )
    imp.add_argument("--file", required=True, help="CSV file with a header line")
    imp.add_argument(
        "--mapping", required=True, help="YAML: columns: {CSV column: target field}, optional mode"
    )
    imp.add_argument("--job-id", default=None, help="resume this job (a UUID); default: a new job")
    imp.add_argument("--mode", choices=("create-only", "upsert", "update-only"), default=None)
    imp.add_argument("--dry-run", action="store_true", help="validate and match every row, write nothing")
    imp.add_argument("--batch-size", type=int, default=500)
    imp.add_argument("--report", default=None, help="write every row's outcome to this CSV file")
    imp.add_argument("--encoding", default="utf-8-sig")

    exp = commands.add_parser(
        "export", parents=[common], help="export customers to a CSV file (your data scope, masked per role)"
    )
    exp.add_argument("--out", required=True, help="CSV file to write ('-' for stdout)")
    exp.add_argument("--filter", default="", help="ListCustomers filter, e.g. 'tier = CUSTOMER_TIER_A'")
    exp.add_argument("--order-by", default="", help="create_time | update_time | display_name [desc]")
    return root


def metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    token = token or os.environ.get("CRM_TOKEN", "")
    if not token:
        raise SystemExit("no token: pass --token or set CRM_TOKEN (make -s token ROLE=admin)")
    return (("authorization", f"Bearer {token}"),)


async def amain(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    call_metadata = metadata(args.token)
    async with grpc.aio.insecure_channel(args.target) as channel:
        try:
            if args.command == "import":
                from crm_customer.cli.import_csv import run_import

                return await run_import(channel, call_metadata, args)
            from crm_customer.cli.export_csv import run_export

            return await run_export(channel, call_metadata, args)
        except grpc.aio.AioRpcError as error:
            details = error_details(error)
            print(f"\nerror: {details.code.name}: {details.message}", file=sys.stderr)
            for field_path, description in details.field_violations.items():
                print(f"  {field_path}: {description}", file=sys.stderr)
            return 2


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return asyncio.run(amain(argv))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
