"""Reporting lag suite: event-to-report lag p50/p99 under a steady write load.

A fixed rate of writes on the sales service (CreateOpportunity, then MoveOpportunityStage of the
same opportunity: two events each) for `seconds`; the reporting service projects them from
CRM_SALES (its durable consumer "reporting-sales", every area's handlers in one transaction).

Lag of one event = the reporting inbox's applied_at (the projection's transaction) minus the
sales outbox's created_at (the producer's transaction time = the event's occurred_at): both
SQLite files of the same run, same machine clock. Measured after the load, once every event
written in the window was applied (bounded wait).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import grpc

from crm_bench.suite import BenchEnv, machine_line

KEY = "reporting_lag"
TITLE = "Reporting: event-to-report lag under a steady write load"

RATE = 20.0  # write pairs (create + stage move) per second
CONSUMER = "reporting-sales"
DRAIN_SECONDS = 120.0
STAGE = "pipelines/default/stages/needs-analysis"


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


async def _write_load(direct: str, token: str, *, seconds: float, rate: float) -> tuple[int, int]:
    from google.protobuf.timestamp_pb2 import Timestamp

    from crm.common.v1 import money_pb2
    from crm.sales.v1 import opportunity_service_pb2 as pb
    from crm.sales.v1 import opportunity_service_pb2_grpc as rpc_grpc

    metadata = (("authorization", f"Bearer {token}"),)
    close = Timestamp(seconds=1_800_000_000)
    errors = 0
    done = 0

    async with grpc.aio.insecure_channel(direct) as channel:
        stub = rpc_grpc.OpportunityServiceStub(channel)

        async def pair(i: int) -> None:
            nonlocal errors, done
            try:
                created = await stub.CreateOpportunity(
                    pb.CreateOpportunityRequest(
                        opportunity=pb.Opportunity(
                            customer=f"customers/{uuid.uuid4()}",
                            title=f"Lag bench {i}",
                            amount=money_pb2.Money(currency_code="CNY", amount_minor=100_000 + i),
                            expected_close_time=close,
                        )
                    ),
                    metadata=metadata,
                    timeout=30,
                )
                await stub.MoveOpportunityStage(
                    pb.MoveOpportunityStageRequest(name=created.name, stage=STAGE),
                    metadata=metadata,
                    timeout=30,
                )
                done += 1
            except grpc.aio.AioRpcError:
                errors += 1

        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks = []
        total = int(seconds * rate)
        for i in range(total):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(pair(i)))
        await asyncio.gather(*tasks)
    return done, errors


async def _lags(env: BenchEnv, since: datetime) -> tuple[list[float], int, int]:
    """(lags in seconds of the applied events, events written, events applied) since `since`."""
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    from crm_shared.db.types import UtcDateTime

    def times(table: str, time_column: str, *where):
        columns = (sa.column("event_id"), sa.column(time_column, UtcDateTime()))
        return sa.select(*columns).select_from(sa.table(table, sa.column("consumer"))).where(*where)

    sales = create_async_engine(env.database_url("sales"))
    reporting = create_async_engine(env.database_url("reporting"))
    try:
        async with sales.connect() as conn:
            written = {e: t for e, t in await conn.execute(times("outbox", "created_at")) if t >= since}
        async with reporting.connect() as conn:
            applied = dict(
                (await conn.execute(times("inbox", "applied_at", sa.column("consumer") == CONSUMER))).all()
            )
    finally:
        await sales.dispose()
        await reporting.dispose()
    lags = [(applied[e] - t).total_seconds() for e, t in written.items() if e in applied]
    return lags, len(written), len(lags)


async def measure(env: BenchEnv) -> str:
    since = datetime.now(UTC)
    started = time.monotonic()
    done, errors = await _write_load(env.direct["sales"], env.token, seconds=env.seconds, rate=RATE)
    wrote_for = time.monotonic() - started
    deadline = time.monotonic() + DRAIN_SECONDS
    while True:
        lags, written, applied = await _lags(env, since)
        if (written and applied >= written) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    drained = time.monotonic() - started
    p50, p99 = _percentile(lags, 50), _percentile(lags, 99)
    print(
        f"  {RATE * 2:.0f} events/s for {wrote_for:.1f} s ({done} pairs, {errors} errors): "
        f"{applied}/{written} applied, lag p50 {p50 * 1000:.0f} ms p99 {p99 * 1000:.0f} ms, "
        f"max {max(lags, default=float('nan')) * 1000:.0f} ms",
        flush=True,
    )
    header = (
        "| write rate (events/s) | written | applied | lag p50 ms | lag p99 ms | lag max ms | drained s |"
    )
    return "\n".join(
        [
            machine_line(
                f"Sales writes at a fixed {RATE:.0f} CreateOpportunity + {RATE:.0f} MoveOpportunityStage "
                f"per second for {env.seconds:.0f} s (direct gRPC); reporting consumes CRM_SALES and "
                "applies every area's handlers (funnel, timeline, agenda, analytics) per event in one "
                "SQLite transaction. Lag = reporting inbox applied_at - sales outbox created_at (the "
                "event's occurrence)."
            ),
            "",
            header,
            "|---:|---:|---:|---:|---:|---:|---:|",
            f"| {RATE * 2:.0f} | {written} | {applied} | {p50 * 1000:.0f} | {p99 * 1000:.0f} | "
            f"{max(lags, default=float('nan')) * 1000:.0f} | {drained:.1f} |",
        ]
    )
