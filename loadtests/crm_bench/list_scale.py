"""List scale suite: ListCustomers p50 with 10 k vs 1 M customers (keyset pagination).

Rows are added straight into the running customer service's SQLite file (plain
sqlite3, one transaction per 50 k rows; business columns only, no personal data —
listing cost does not depend on it). The same queries are measured at 10 k and at
1 M rows in one run:

  first page, no filter           ORDER BY create_time DESC, id DESC LIMIT 51
  page 200, no filter             same query, after a keyset position 10 000 rows in
  first page, team filter         served by the (team, create_time, id) index
  page 200, team filter

With keyset pagination and those indexes the 1 M / 10 k ratios stay near 1; an
OFFSET-based page 200 would read 10 000 rows first.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
import uuid
from datetime import UTC, datetime, timedelta

import grpc

from crm_bench.load import run_load
from crm_bench.suite import BenchEnv, machine_line

KEY = "list_scale"
TITLE = "ListCustomers at 10 k vs 1 M customers"
SMALL = 10_000
PAGE_SIZE = 50
DEEP_PAGES = 200
TEAMS = 20


def _seed(path: str, start: int, stop: int, run: str) -> float:
    """Insert customers start..stop-1 (sync; run in a thread). Returns seconds taken."""
    began = time.perf_counter()
    base = datetime(2020, 1, 1, tzinfo=UTC)
    conn = sqlite3.connect(path, timeout=60)
    try:
        conn.execute("PRAGMA synchronous=NORMAL")
        for chunk in range(start, stop, 50_000):
            rows = []
            for n in range(chunk, min(chunk + 50_000, stop)):
                moment = (base + timedelta(seconds=n * 7)).replace(tzinfo=None).isoformat(sep=" ")
                rows.append(
                    (
                        str(uuid.UUID(int=(hash((run, n)) & ((1 << 128) - 1)))),
                        "company",
                        f"Scale customer {n:07d}",
                        "prospect",
                        "[]",
                        f"rep-{n % 500}",
                        f"scale-{run}-{n % TEAMS}",
                        "{}",
                        moment,
                        moment,
                        1,
                    )
                )
            conn.executemany(
                "INSERT INTO customers (id, kind, display_name, lifecycle_stage, tags, owner, team,"
                " custom_fields, create_time, update_time, version) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            conn.commit()
        conn.execute("ANALYZE")
        conn.commit()
    finally:
        conn.close()
    return time.perf_counter() - began


async def _page_token(stub, metadata, request_type, filter_text: str, pages: int) -> str:
    token = ""
    for _ in range(pages):
        reply = await stub.ListCustomers(
            request_type(filter=filter_text, page_size=PAGE_SIZE, page_token=token), metadata=metadata
        )
        token = reply.next_page_token
    return token


async def _measure_at(stub, metadata, rpc, run: str, seconds: float) -> dict[str, float]:
    team_filter = f'team = "scale-{run}-3"'
    results = {}
    for label, filter_text in (("no filter", ""), ("team filter", team_filter)):
        deep = await _page_token(stub, metadata, rpc.ListCustomersRequest, filter_text, DEEP_PAGES)
        for page_label, token in (("first page", ""), (f"page {DEEP_PAGES}", deep)):
            request = rpc.ListCustomersRequest(filter=filter_text, page_size=PAGE_SIZE, page_token=token)
            result = await run_load(
                f"{page_label}, {label}",
                lambda i, r=request: stub.ListCustomers(r, metadata=metadata),
                concurrency=4,
                seconds=seconds,
                warmup_seconds=0.5,
            )
            results[f"{page_label}, {label}"] = result.p50
    return results


async def measure(env: BenchEnv) -> str:
    from crm.customer.v1 import customer_service_pb2 as rpc
    from crm.customer.v1 import customer_service_pb2_grpc as rpc_grpc

    path = env.database_url("customer").split("///", 1)[1]
    large = int(os.environ.get("BENCH_LIST_ROWS", "1000000"))
    seconds = min(env.seconds, 4.0)
    run = uuid.uuid4().hex[:6]
    async with grpc.aio.insecure_channel(env.direct["customer"]) as channel:
        stub = rpc_grpc.CustomerServiceStub(channel)
        seeded_small = await asyncio.to_thread(_seed, path, 0, SMALL, run)
        small = await _measure_at(stub, env.metadata, rpc, run, seconds)
        print(f"  seeded {SMALL} rows in {seeded_small:.1f} s; measured", flush=True)
        seeded_large = await asyncio.to_thread(_seed, path, SMALL, large, run)
        print(f"  seeded {large - SMALL} more rows in {seeded_large:.1f} s", flush=True)
        big = await _measure_at(stub, env.metadata, rpc, run, seconds)
    size_mb = (await asyncio.to_thread(os.path.getsize, path)) / 1e6
    lines = [
        machine_line(
            f"Customer service on SQLite ({size_mb:.0f} MB file at {large:,} rows), direct gRPC, "
            f"4 calls in flight, {seconds:.0f} s per query, page size {PAGE_SIZE}, admin scope. "
            f"{TEAMS} teams, so a team filter selects 1/{TEAMS} of the rows."
        ),
        "",
        f"| query | p50 ms at {SMALL:,} | p50 ms at {large:,} | ratio |",
        "|---|---:|---:|---:|",
    ]
    for label, p50 in small.items():
        lines.append(f"| {label} | {p50:.1f} | {big[label]:.1f} | {big[label] / p50:.2f} |")
    return "\n".join(lines)
