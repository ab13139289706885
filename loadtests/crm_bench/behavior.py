"""Behaviour events suite: ingestion rate of the client-streaming IngestBehaviorEvents.

one stream    direct / through Envoy     events matched by customer name
4 streams     direct / through Envoy     (concurrent streams share the one SQLite writer)
one stream    direct, matched by email   (normalization + blind-index lookups per batch)
1 event/call  direct                     the same RPC used unary-style: the baseline ratio

Each streaming scenario sends events until its time (or 200k events) is up; events/s
counts events the service accepted, measured until the response arrives (everything
committed). ~2 % are cart_abandoned/purchase, so outbox events and lifecycle moves are
part of the cost.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import grpc

from crm_bench.load import run_load
from crm_bench.suite import BenchEnv, machine_line

KEY = "behavior"
TITLE = "Behaviour events: ingestion rate (client stream)"

MAX_EVENTS_PER_SCENARIO = 200_000
SEED_CUSTOMERS = 200


@dataclass(frozen=True)
class Rate:
    scenario: str
    events: int
    seconds: float
    streams: int
    errors: int = 0

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def _events(run: str, label: str, subjects: list[tuple[str, str]], deadline: float, limit: int):
    from google.protobuf.timestamp_pb2 import Timestamp

    from crm.common.v1 import money_pb2
    from crm.customer.v1 import behavior_events_pb2 as bpb

    T = bpb.BehaviorEventType
    occur = Timestamp()
    occur.GetCurrentTime()
    occur.seconds -= 3600
    cycle = [T.BEHAVIOR_EVENT_TYPE_PAGE_VIEW] * 30 + [T.BEHAVIOR_EVENT_TYPE_PRODUCT_VIEW] * 12
    cycle += [T.BEHAVIOR_EVENT_TYPE_CART_ADD] * 4 + [T.BEHAVIOR_EVENT_TYPE_EMAIL_OPEN] * 3
    cycle += [T.BEHAVIOR_EVENT_TYPE_CART_ABANDONED, T.BEHAVIOR_EVENT_TYPE_PURCHASE]

    async def stream():
        for i in range(limit):
            if i % 256 == 0 and time.perf_counter() > deadline:
                return
            kind = cycle[i % len(cycle)]
            field, value = subjects[i % len(subjects)]
            event = bpb.BehaviorEvent(
                event_id=f"{run}-{label}-{i}", source="bench", type=kind, occur_time=occur, **{field: value}
            )
            if kind in (T.BEHAVIOR_EVENT_TYPE_PURCHASE, T.BEHAVIOR_EVENT_TYPE_CART_ABANDONED):
                event.properties.value.CopyFrom(money_pb2.Money(currency_code="CNY", amount_minor=1999))
                event.properties.items_count = 2
            else:
                event.properties.url = f"https://shop.example/p/{i % 977}"
            yield event

    return stream()


async def _streams(stub, metadata, label, run, subjects, *, streams: int, seconds: float) -> Rate:
    deadline = time.perf_counter() + seconds
    limit = MAX_EVENTS_PER_SCENARIO // streams
    started = time.perf_counter()
    replies = await asyncio.gather(
        *(
            stub.IngestBehaviorEvents(
                _events(run, f"{label}{n}", subjects, deadline, limit), metadata=metadata, timeout=300
            )
            for n in range(streams)
        )
    )
    elapsed = time.perf_counter() - started
    accepted = sum(r.accepted for r in replies)
    lost = sum(r.unmatched + r.rejected + r.duplicates for r in replies)
    return Rate(label, accepted, elapsed, streams, lost)


async def measure(env: BenchEnv) -> str:
    from crm.customer.v1 import behavior_events_pb2 as bpb
    from crm.customer.v1 import behavior_service_pb2_grpc as brpc_grpc
    from crm.customer.v1 import customer_pb2 as pb
    from crm.customer.v1 import customer_service_pb2 as rpc
    from crm.customer.v1 import customer_service_pb2_grpc as rpc_grpc

    metadata = env.metadata
    run = uuid.uuid4().hex[:8]
    rates: list[Rate] = []
    async with (
        grpc.aio.insecure_channel(env.direct["customer"]) as direct_channel,
        grpc.aio.insecure_channel(env.gateway) as gateway_channel,
    ):
        customers = rpc_grpc.CustomerServiceStub(direct_channel)
        direct = brpc_grpc.BehaviorServiceStub(direct_channel)
        gateway = brpc_grpc.BehaviorServiceStub(gateway_channel)
        names, emails = [], []
        for i in range(SEED_CUSTOMERS):
            email = f"shopper-{run}-{i}@bench.example"
            created = await customers.CreateCustomer(
                rpc.CreateCustomerRequest(
                    customer=pb.Customer(
                        display_name=f"Shopper {i}", email_addresses=[pb.EmailAddress(address=email)]
                    )
                ),
                metadata=metadata,
            )
            names.append(("customer", created.name))
            emails.append(("email", email.upper()))

        # Warm-up: connections, prepared statements, the first batch's lazy imports.
        await _streams(direct, metadata, "warm", run, names, streams=1, seconds=1)
        scenarios = [
            ("one stream, direct", direct, names, 1),
            ("4 streams, direct", direct, names, 4),
            ("one stream, via Envoy", gateway, names, 1),
            ("4 streams, via Envoy", gateway, names, 4),
            ("one stream, direct, matched by email", direct, emails, 1),
        ]
        for number, (label, stub, subjects, streams) in enumerate(scenarios):
            rate = await _streams(
                stub, metadata, f"s{number}-", run, subjects, streams=streams, seconds=env.seconds
            )
            rate = Rate(label, rate.events, rate.seconds, streams, rate.errors)
            print(
                f"  {label:40s} {rate.per_second:9.0f} events/s"
                f"  ({rate.events} events in {rate.seconds:.1f} s)",
                flush=True,
            )
            rates.append(rate)

        # The same RPC with one event per call: what a client that does not batch gets.
        from google.protobuf.timestamp_pb2 import Timestamp

        occur = Timestamp()
        occur.GetCurrentTime()
        occur.seconds -= 60

        def single(i: int):
            async def one():
                yield bpb.BehaviorEvent(
                    event_id=f"{run}-single-{i}",
                    source="bench",
                    type=bpb.BEHAVIOR_EVENT_TYPE_PAGE_VIEW,
                    occur_time=occur,
                    customer=names[i % len(names)][1],
                )

            return direct.IngestBehaviorEvents(one(), metadata=metadata)

        unary = await run_load(
            "1 event per call, direct", single, concurrency=env.concurrency, seconds=env.seconds
        )
        print(
            f"  {unary.scenario:40s} {unary.rps:9.0f} events/s"
            f"  p50 {unary.p50:.1f} ms  p99 {unary.p99:.1f} ms",
            flush=True,
        )
        rates.append(Rate(unary.scenario, unary.calls, unary.seconds, env.concurrency, unary.errors))
    return render(rates, env)


def render(rates: list[Rate], env: BenchEnv) -> str:
    by = {r.scenario: r for r in rates}
    baseline = by["1 event per call, direct"].per_second
    lines = [
        machine_line(
            f"Customer service on SQLite (one writer), {SEED_CUSTOMERS} customers, batches of 500 "
            f"events per transaction, each streaming scenario up to {env.seconds:.0f} s or "
            f"{MAX_EVENTS_PER_SCENARIO} events; the unary-style baseline runs {env.concurrency} calls "
            "in flight. Client, service, NATS and Envoy share the machine."
        ),
        "",
        "| scenario | streams | events | events/s | × 1 event per call |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rates:
        ratio = f"{r.per_second / baseline:.1f}" if baseline else "n/a"
        lines.append(f"| {r.scenario} | {r.streams} | {r.events} | {r.per_second:.0f} | {ratio} |")
    one, via = by["one stream, direct"], by["one stream, via Envoy"]
    if one.per_second:
        lines += ["", f"Through Envoy / direct (one stream): {via.per_second / one.per_second:.2f}."]
    return "\n".join(lines)
