"""python -m crm_customer.admin rotate-keys: re-wrap every customer data key under the active key.

Reads the service's own settings (CRM_CUSTOMER_DATABASE_URL, CRM_CUSTOMER_PII_KEYS, …), works in
batches of one transaction each and prints one JSON line of progress per batch. It is safe to run
while the service is up, to interrupt and to run again: keys already under the active key are
skipped, and --resume-after continues from the last customer id a previous run printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict

from crm_customer.adapters import tables
from crm_customer.config import CustomerSettings
from crm_customer.service.privacy import RotationProgress, rotate_personal_data_keys
from crm_shared.clock import SystemClock
from crm_shared.db.engine import Database
from crm_shared.db.uow import UnitOfWorkFactory
from crm_shared.errors import DomainError
from crm_shared.pii.codec import PersonalDataCodec
from crm_shared.pii.crypto import BlindIndex, KeyRing


async def rotate_keys(settings: CustomerSettings, args: argparse.Namespace) -> RotationProgress:
    ring = KeyRing.from_spec(settings.pii_keys.get_secret_value())
    blind_key = settings.blind_index_key.get_secret_value()
    codec = PersonalDataCodec(ring, BlindIndex(blind_key) if blind_key else None)  # type: ignore[arg-type]
    db = await Database.connect(settings.database_url, pool_size=2)
    try:
        factory = UnitOfWorkFactory(db, tables.platform, service="customer", clock=SystemClock())
        return await rotate_personal_data_keys(
            factory,
            codec,
            policy=None,
            principal=None,
            batch_size=args.batch_size,
            max_batches=args.max_batches,
            resume_after=args.resume_after,
            on_batch=lambda progress: print(json.dumps(asdict(progress)), flush=True),
        )
    finally:
        await db.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crm_customer.admin")
    commands = parser.add_subparsers(dest="command", required=True)
    rotate = commands.add_parser("rotate-keys", help="re-wrap every data key under the active key ring key")
    rotate.add_argument("--batch-size", type=int, default=500)
    rotate.add_argument("--max-batches", type=int, default=0, help="stop after N batches (0 = all)")
    rotate.add_argument("--resume-after", default="", help="customer id printed by an interrupted run")
    args = parser.parse_args(argv)
    try:
        progress = asyncio.run(rotate_keys(CustomerSettings(), args))
    except (DomainError, ValueError) as error:
        print(f"rotate-keys: {error}", file=sys.stderr)
        return 1
    print(
        f"rotate-keys: {progress.rewrapped} re-wrapped, {progress.already_current} already under "
        f"{progress.active_key_id!r}, {progress.total} in total"
        + ("" if progress.finished else f"; resume with --resume-after {progress.resume_after}"),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
