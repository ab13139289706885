"""python -m crm_bench [--suite NAME ...] [--seconds S] [--concurrency C]: `make bench`.

Starts the real platform the way `make run` does (NATS, every service on SQLite,
Envoy) on free ports in a temporary data directory, runs the benchmark suites in
crm_bench.suite.SUITES against it, prints each section and writes it to
docs/benchmarks.md. Figures and ratios only — nothing here passes or fails on time.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

from crm_bench.report import write_section
from crm_bench.suite import SUITES, BenchEnv

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--suite", action="append", help=f"run only these (default: {', '.join(SUITES)})")
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", "8")))
    parser.add_argument("--concurrency", type=int, default=int(os.environ.get("BENCH_CONCURRENCY", "64")))
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    wanted = args.suite or [s for s in os.environ.get("BENCH_SUITES", ",".join(SUITES)).split(",") if s]
    unknown = sorted(set(wanted) - set(SUITES))
    if unknown:
        parser.error(f"unknown suites {unknown}; known: {SUITES}")
    suites = [importlib.import_module(f"crm_bench.{name}") for name in SUITES if name in wanted]

    data = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    os.environ.update(
        {
            "CRM_DATA_DIR": str(data),
            "CRM_GATEWAY_PORT": str(free_port()),
            "CRM_GATEWAY_ADMIN_PORT": str(free_port()),
            "CRM_DEVSTACK_NATS_PORT": str(free_port()),
            "CRM_DEVSTACK_QUIET": "1",
        }
    )
    from crm_gateway.catalog import load_catalog

    for spec in load_catalog().services:
        os.environ[f"CRM_DEVSTACK_{spec.name.upper()}_PORT"] = str(free_port())
        os.environ[f"CRM_DEVSTACK_{spec.name.upper()}_METRICS_PORT"] = str(free_port())
        os.environ[f"CRM_{spec.name.upper()}_LOG_LEVEL"] = "WARNING"
    from crm_gateway.devstack import build_stack
    from crm_shared.auth.dev_keys import mint_token

    stack = build_stack()
    try:
        stack.start()
        catalog = stack.catalog
        env = BenchEnv(
            gateway=f"127.0.0.1:{catalog.listen_port}",
            direct={spec.name: f"127.0.0.1:{spec.dev_port}" for spec in catalog.services},
            token=mint_token(
                stack.keys,
                subject="bench",
                roles=["admin"],
                team="bench",
                issuer=catalog.jwt_issuer,
                audience=catalog.jwt_audience,
                ttl_seconds=6 * 3600,
            ),
            seconds=args.seconds,
            concurrency=args.concurrency,
            stack=stack,
            data_dir=data,
        )
        for suite in suites:
            print(f"\n== {suite.TITLE} ==", flush=True)
            started = time.monotonic()
            section = asyncio.run(suite.measure(env))
            print("\n" + section + f"\n\n({suite.KEY}: {time.monotonic() - started:.0f} s)", flush=True)
            if not args.no_write:
                write_section(REPO / "docs" / "benchmarks.md", suite.KEY, suite.TITLE, section)
        if not args.no_write:
            print("written to docs/benchmarks.md")
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
