"""Opportunities suite: CreateOpportunity and MoveOpportunityStage throughput, direct vs through Envoy.

CreateOpportunity     inserts the opportunity, its first stage-history entry, an outbox event, an audit row
MoveOpportunityStage  loads the opportunity (+ lines, history), applies the move, updates it, appends
                      history, outbox event, audit row — each call moves a different open opportunity
                      back and forth between two open stages, so every call is a real stage change.
"""

from __future__ import annotations

import uuid

import grpc

from crm_bench.load import LoadResult, run_load
from crm_bench.suite import BenchEnv, machine_line

KEY = "opportunities"
TITLE = "Opportunities: create / update (stage move) throughput, direct vs Envoy"

STAGES = ("pipelines/default/stages/needs-analysis", "pipelines/default/stages/proposal")
SEED = 512


async def measure(env: BenchEnv) -> str:
    results = await _measure(
        env.gateway, env.direct["sales"], env.token, seconds=env.seconds, concurrency=env.concurrency
    )
    return render(results, seconds=env.seconds, concurrency=env.concurrency)


async def _measure(
    gateway: str, direct: str, token: str, *, seconds: float, concurrency: int
) -> list[LoadResult]:
    from google.protobuf.timestamp_pb2 import Timestamp

    from crm.common.v1 import money_pb2
    from crm.sales.v1 import opportunity_service_pb2 as pb
    from crm.sales.v1 import opportunity_service_pb2_grpc as rpc_grpc

    metadata = (("authorization", f"Bearer {token}"),)
    close = Timestamp(seconds=1_800_000_000)

    def opportunity(i: int) -> pb.Opportunity:
        return pb.Opportunity(
            customer=f"customers/{uuid.uuid4()}",
            title=f"Bench deal {i}",
            amount=money_pb2.Money(currency_code="CNY", amount_minor=100_000 + i),
            expected_close_time=close,
        )

    results: list[LoadResult] = []
    async with (
        grpc.aio.insecure_channel(direct) as direct_channel,
        grpc.aio.insecure_channel(gateway) as gateway_channel,
    ):
        direct_stub = rpc_grpc.OpportunityServiceStub(direct_channel)
        gateway_stub = rpc_grpc.OpportunityServiceStub(gateway_channel)
        names = [
            (
                await direct_stub.CreateOpportunity(
                    pb.CreateOpportunityRequest(opportunity=opportunity(i)), metadata=metadata
                )
            ).name
            for i in range(SEED)
        ]
        # Each opportunity's next move alternates between two open stages (qualification -> needs-analysis
        # -> proposal -> needs-analysis ...), so no call is refused as "already in stage".
        moves = [0] * len(names)

        def create(stub):
            return lambda i: stub.CreateOpportunity(
                pb.CreateOpportunityRequest(opportunity=opportunity(i)), metadata=metadata
            )

        def move(stub):
            async def call(i: int):
                slot = i % len(names)
                stage = STAGES[moves[slot] % 2]
                moves[slot] += 1
                return await stub.MoveOpportunityStage(
                    pb.MoveOpportunityStageRequest(name=names[slot], stage=stage), metadata=metadata
                )

            return call

        scenarios = [
            ("CreateOpportunity direct", create(direct_stub)),
            ("CreateOpportunity via Envoy", create(gateway_stub)),
            ("MoveOpportunityStage direct", move(direct_stub)),
            ("MoveOpportunityStage via Envoy", move(gateway_stub)),
        ]
        for label, call in scenarios:
            result = await run_load(label, call, concurrency=concurrency, seconds=seconds)
            print(
                f"  {label:34s} {result.rps:8.0f} req/s  p50 {result.p50:6.1f} ms  p99 {result.p99:6.1f} ms"
                f"  ({result.calls} calls, {result.errors} errors)",
                flush=True,
            )
            results.append(result)
    return results


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def render(results: list[LoadResult], *, seconds: float, concurrency: int) -> str:
    by = {r.scenario: r for r in results}
    lines = [
        machine_line(
            f"{concurrency} calls in flight, {seconds:.0f} s per scenario after 1 s warm-up; client, "
            "service, NATS and Envoy share the machine. Sales service on SQLite (one writer); every call "
            f"writes its rows, stage history, an outbox event and an audit row in one transaction. "
            f"Moves cycle over {SEED} open opportunities, so no two calls in flight touch the same one."
        ),
        "",
        "| scenario | req/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|",
        *(f"| {r.scenario} | {r.rps:.0f} | {r.p50:.1f} | {r.p99:.1f} | {r.errors} |" for r in results),
        "",
        "| ratio | throughput | p50 latency |",
        "|---|---:|---:|",
    ]
    for rpc_name in ("CreateOpportunity", "MoveOpportunityStage"):
        direct, gateway = by[f"{rpc_name} direct"], by[f"{rpc_name} via Envoy"]
        lines.append(
            f"| {rpc_name}: via Envoy / direct | {ratio(gateway.rps, direct.rps)} | "
            f"{ratio(gateway.p50, direct.p50)} |"
        )
    create, move = by["CreateOpportunity direct"], by["MoveOpportunityStage direct"]
    lines.append(
        f"| MoveOpportunityStage / CreateOpportunity (direct) | {ratio(move.rps, create.rps)} | "
        f"{ratio(move.p50, create.p50)} |"
    )
    return "\n".join(lines)
