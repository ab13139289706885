"""Dev tokens: `python -m crm_gateway.tokens mint --role admin --subject alice --team east`.

Keys live in the dev data directory (.crm/keys, the same ones `make run` gives Envoy and the
services), created on first use. Issuer and audience come from services.yaml.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from crm_gateway.catalog import load_catalog
from crm_shared.auth.dev_keys import generate_dev_keys, mint_token

REPO_ROOT = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    return Path(os.environ.get("CRM_DATA_DIR") or REPO_ROOT / ".crm").resolve()


def default_keys_dir() -> Path:
    return data_dir() / "keys"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crm_gateway.tokens", description="dev JWT tool")
    commands = parser.add_subparsers(dest="command", required=True)
    mint = commands.add_parser("mint", help="print a signed dev token")
    mint.add_argument(
        "--role",
        action="append",
        required=True,
        help="role claim (repeat for several), e.g. admin, sales_manager, sales_rep",
    )
    mint.add_argument("--subject", required=True, help="sub claim, e.g. alice (service:<name> for services)")
    mint.add_argument("--team", default="", help="team claim, e.g. east")
    mint.add_argument("--ttl", type=int, default=3600, help="seconds until expiry (default 3600)")
    mint.add_argument("--keys-dir", type=Path, default=None, help="default: $CRM_DATA_DIR/keys or .crm/keys")
    mint.add_argument("--issuer", default=None, help="default: services.yaml jwt.issuer")
    mint.add_argument("--audience", default=None, help="default: services.yaml jwt.audience")
    keys = commands.add_parser("keys", help="create (or show) the dev key pair and JWKS")
    keys.add_argument("--dir", type=Path, default=None, help="default: $CRM_DATA_DIR/keys or .crm/keys")
    args = parser.parse_args(argv)

    if args.command == "keys":
        dev_keys = generate_dev_keys(args.dir or default_keys_dir())
        print(f"kid {dev_keys.kid}")
        print(f"private key {dev_keys.private_key_path}")
        print(f"public key {dev_keys.public_key_path}")
        print(f"jwks {dev_keys.jwks_path}")
        return 0

    catalog = load_catalog()
    dev_keys = generate_dev_keys(args.keys_dir or default_keys_dir())
    roles = [r for value in args.role for r in value.split(",") if r]
    print(
        mint_token(
            dev_keys,
            subject=args.subject,
            roles=roles,
            team=args.team,
            issuer=args.issuer or catalog.jwt_issuer,
            audience=args.audience or catalog.jwt_audience,
            ttl_seconds=args.ttl,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
