"""Funnel suite: GetFunnelReport latency over 10 k vs 1 M opportunities (reporting read model).

Opportunities and their stage intervals (a seeded RNG: 500 reps in 20 teams, one pipeline of
four open stages plus won and lost, created over two years, ~2.5 intervals each) are
bulk-inserted straight into the reporting service's SQLite read model with SQLAlchemy Core
executemany in batches of 50 000 (the sales tables' secondary indexes are dropped for the load
and rebuilt after it, then ANALYZE). The same GetFunnelReport (one quarter) is measured side by
side at 10 k and at 1 M opportunities, for an admin (every team) and a sales manager (one team):
p50/p95 over 20 sequential calls after 2 warm-up calls.

`make bench` runs it against the devstack's reporting service; `python -m crm_bench.funnel`
runs it alone against an in-process reporting service (no NATS) on a temporary SQLite file.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc

from crm_bench.suite import BenchEnv, machine_line

KEY = "funnel"
TITLE = "Funnel report at 10 k vs 1 M opportunities"
SMALL = 10_000
BATCH = 50_000
CALLS = 20
WARMUP = 2
REPS = 500
TEAMS = 20
PIPELINE = "pipelines/bench"
OPEN_STAGES = [f"{PIPELINE}/stages/{s}" for s in ("qualify", "analysis", "proposal", "negotiation")]
WON, LOST = f"{PIPELINE}/stages/won", f"{PIPELINE}/stages/lost"
START = datetime(2024, 1, 1, tzinfo=UTC)
QUARTER = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC))


def _opportunity(rng: random.Random, n: int, run: str) -> tuple[dict, list[dict]]:
    owner = f"rep-{n % REPS}"
    team = f"team-{n % REPS % TEAMS}"
    name = f"opportunities/bench-{run}-{n:07d}"
    created = START + timedelta(seconds=rng.randrange(730 * 86_400))
    reached = rng.choices((1, 2, 3, 4), weights=(40, 30, 20, 10))[0]
    outcome = rng.choices(("open", "won", "lost"), weights=(55, 20, 25))[0]
    entries = []
    at = created
    for stage in OPEN_STAGES[:reached]:
        entries.append((stage, at, ""))
        at = at + timedelta(seconds=rng.randrange(86_400, 20 * 86_400))
    if outcome != "open":
        entries.append((WON if outcome == "won" else LOST, at, outcome))
    intervals = []
    for i, (stage, entered, closing) in enumerate(entries):
        left = entries[i + 1][1] if i + 1 < len(entries) else None
        intervals.append(
            dict(
                opportunity=name,
                entered_at=_stored(entered),
                stage=stage,
                pipeline=PIPELINE,
                left_at=_stored(left),
                seconds_in_stage=(left - entered).total_seconds() if left else None,
                owner=owner,
                team=team,
                closing=closing,
            )
        )
    last_stage, last_time, _ = entries[-1]
    amount = rng.randrange(1_000_00, 1_000_000_00)
    probability = {"won": 100, "lost": 0}.get(outcome, 10 * (reached + 1))
    row = dict(
        name=name,
        customer=f"customers/bench-{n % 200_000}",
        pipeline=PIPELINE,
        stage=last_stage,
        currency="CNY" if rng.random() < 0.9 else "USD",
        amount_minor=amount,
        weighted_minor=amount * probability // 100,
        probability=probability,
        forecast_category=4 if outcome != "open" else rng.choice((1, 2, 3)),
        expected_close_time=_stored(created + timedelta(days=rng.randrange(10, 120))),
        owner=owner,
        team=team,
        source_lead="",
        campaign="",
        create_time=_stored(created),
        status=outcome,
        status_time=_stored(last_time),
        deleted=False,
        won_time=_stored(last_time) if outcome == "won" else None,
        lost_time=_stored(last_time) if outcome == "lost" else None,
        close_month=last_time.strftime("%Y-%m") if outcome != "open" else "",
        cycle_seconds=(last_time - created).total_seconds() if outcome == "won" else None,
        snapshot_time=_stored(last_time),
    )
    return row, intervals


def _stored(value):
    """A UTC datetime as the SQLite read model stores it (UtcDateTime: naive, microseconds)."""
    if isinstance(value, datetime):
        text = str(value.replace(tzinfo=None))  # the seeded times are whole seconds
        return text if value.microsecond else text + ".000000"
    return value


def _plain(table):
    """The table's columns without type processing: Core executemany of pre-rendered values."""
    import sqlalchemy as sa

    return sa.table(table.name, *[sa.column(c.name) for c in table.columns])


def seed(path: str, start: int, stop: int, run: str) -> tuple[float, int]:
    """Insert opportunities start..stop-1 and their intervals (sync). Returns (seconds, intervals)."""
    import sqlalchemy as sa

    from crm_reporting.adapters.sales_tables import sales_opportunities, sales_stage_intervals, sales_stages

    began = time.perf_counter()
    rng = random.Random(f"{run}:{start}")
    engine = sa.create_engine(f"sqlite:///{path}")
    tables = (sales_opportunities, sales_stage_intervals)
    count = 0
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA synchronous=OFF")
            for table in tables:
                for index in table.indexes:
                    index.drop(conn)
        for chunk in range(start, stop, BATCH):
            opportunities, intervals = [], []
            for n in range(chunk, min(chunk + BATCH, stop)):
                row, entries = _opportunity(rng, n, run)
                opportunities.append(row)
                intervals.extend(entries)
            with engine.begin() as conn:
                conn.execute(_plain(sales_opportunities).insert(), opportunities)
                conn.execute(_plain(sales_stage_intervals).insert(), intervals)
            count += len(intervals)
        with engine.begin() as conn:
            for table in tables:
                for index in table.indexes:
                    index.create(conn)
            order = [*OPEN_STAGES, WON, LOST]
            known = {r[0] for r in conn.execute(sa.select(sales_stages.c.stage))}
            rows = [
                dict(stage=s, pipeline=PIPELINE, first_entered_at=START + timedelta(seconds=i), closing=c)
                for i, (s, c) in enumerate(zip(order, ["", "", "", "", "won", "lost"], strict=True))
                if s not in known
            ]
            if rows:
                conn.execute(sales_stages.insert(), rows)
            # What the projection keeps per opportunity change, rebuilt in one statement here.
            conn.exec_driver_sql("DELETE FROM sales_stage_current")
            conn.exec_driver_sql(
                "INSERT INTO sales_stage_current (stage, pipeline, currency, owner, team, opportunities,"
                " amount_minor) SELECT stage, pipeline, currency, owner, team, count(*), sum(amount_minor)"
                " FROM sales_opportunities WHERE NOT deleted AND stage != ''"
                " GROUP BY stage, pipeline, currency, owner, team"
            )
            conn.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()
    return time.perf_counter() - began, count


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


async def _latency(stub, request, metadata) -> dict[str, float]:
    for _ in range(WARMUP):
        await stub.GetFunnelReport(request, metadata=metadata)
    timings = []
    for _ in range(CALLS):
        began = time.perf_counter()
        await stub.GetFunnelReport(request, metadata=metadata)
        timings.append((time.perf_counter() - began) * 1000)
    return {"p50": statistics.median(timings), "p95": _percentile(timings, 95)}


async def _measure(address: str, path: str, scopes: dict[str, tuple]) -> str:
    from google.protobuf.timestamp_pb2 import Timestamp

    from crm.reporting.v1 import common_pb2
    from crm.reporting.v1 import sales_report_service_pb2 as pb
    from crm.reporting.v1 import sales_report_service_pb2_grpc as pb_grpc

    large = int(os.environ.get("BENCH_FUNNEL_ROWS", "1000000"))
    run = os.environ.get("BENCH_FUNNEL_SEED", "42")
    start, end = Timestamp(), Timestamp()
    start.FromDatetime(QUARTER[0])
    end.FromDatetime(QUARTER[1])
    request = pb.GetFunnelReportRequest(
        query=common_pb2.ReportQuery(period=common_pb2.Period(start_time=start, end_time=end))
    )
    results: dict[tuple[str, int], dict[str, float]] = {}
    seeded = {}
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.SalesReportServiceStub(channel)
        for size, first in ((SMALL, 0), (large, SMALL)):
            seconds, intervals = await asyncio.to_thread(seed, path, first, size, run)
            seeded[size] = (seconds, intervals)
            print(
                f"  seeded opportunities {first}..{size} ({intervals} stage intervals) in {seconds:.1f} s",
                flush=True,
            )
            for label, metadata in scopes.items():
                results[(label, size)] = await _latency(stub, request, metadata)
                print(f"  {size} opportunities, {label}: {results[(label, size)]}", flush=True)
        sample = await stub.GetFunnelReport(request, metadata=scopes["all teams (admin)"])
    lines = [
        machine_line(f"SQLite read model, one quarter of a two-year history; {CALLS} sequential calls."),
        "",
        f"Seeding (Core executemany, {BATCH} rows a batch): "
        + "; then ".join(
            f"{n - first:,} opportunities + {iv:,} stage intervals in {s:.1f} s"
            for first, (n, (s, iv)) in zip((0, SMALL), seeded.items(), strict=True)
        )
        + " (secondary indexes rebuilt and ANALYZE after each load).",
        "",
        f"| scope | p50 @ {SMALL:,} (ms) | p95 @ {SMALL:,} (ms) "
        f"| p50 @ {large:,} (ms) | p95 @ {large:,} (ms) | p50 ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label in scopes:
        a, b = results[(label, SMALL)], results[(label, large)]
        lines.append(
            f"| {label} | {a['p50']:.1f} | {a['p95']:.1f} | {b['p50']:.1f} | {b['p95']:.1f} "
            f"| {b['p50'] / a['p50']:.1f}× |"
        )
    stages = ", ".join(f"{s.stage.rsplit('/', 1)[1]} {s.entered}" for s in sample.stages)
    lines += [
        "",
        f"At {large:,}: entered per stage in the quarter: {stages}; won {sample.won}, lost {sample.lost}.",
    ]
    return "\n".join(lines)


async def measure(env: BenchEnv) -> str:
    from crm_shared.auth.dev_keys import mint_token

    catalog = env.stack.catalog
    manager = mint_token(
        env.stack.keys,
        subject="bench-manager",
        roles=["sales_manager"],
        team="team-3",
        issuer=catalog.jwt_issuer,
        audience=catalog.jwt_audience,
        ttl_seconds=3600,
    )
    scopes = {
        "all teams (admin)": env.metadata,
        "one team (sales manager)": (("authorization", f"Bearer {manager}"),),
    }
    path = env.database_url("reporting").split("///", 1)[1]
    return await _measure(env.direct["reporting"], path, scopes)


async def _standalone() -> str:
    """The suite alone: an in-process reporting service (no NATS) on a temporary SQLite file."""
    from crm_reporting.bootstrap import build
    from crm_reporting.config import ReportingSettings
    from crm_shared.auth.dev_keys import generate_dev_keys, mint_token
    from crm_shared.runtime import start_service

    directory = Path(tempfile.mkdtemp(prefix="crm-bench-funnel-"))
    keys = generate_dev_keys(directory / "keys")
    path = directory / "reporting.db"
    issuer, audience = "crm-bench", "crm"
    settings = ReportingSettings(
        grpc_port=0,
        database_url=f"sqlite+aiosqlite:///{path}",
        jwt_jwks_file=str(keys.jwks_path),
        jwt_issuer=issuer,
        jwt_audience=audience,
        page_token_secret="bench-page-secret",
        shutdown_grace_seconds=2,
        log_level="WARNING",
    )
    running = await start_service(settings, build, connect_nats=False)
    try:

        def token(role: str, subject: str, team: str) -> tuple:
            jwt = mint_token(keys, subject=subject, roles=[role], team=team, issuer=issuer, audience=audience)
            return (("authorization", f"Bearer {jwt}"),)

        scopes = {
            "all teams (admin)": token("admin", "bench", "hq"),
            "one team (sales manager)": token("sales_manager", "bench-manager", "team-3"),
        }
        return await _measure(running.address, str(path), scopes)
    finally:
        await running.stop(1)


if __name__ == "__main__":
    began = time.perf_counter()
    print(asyncio.run(_standalone()))
    print(f"(whole run {time.perf_counter() - began:.0f} s)")
