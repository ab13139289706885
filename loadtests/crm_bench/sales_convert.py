"""ConvertLead suite: latency of a lead conversion with the real customer service behind it.

Each conversion is a fresh lead (created beforehand, not measured): CreateCustomer and
CreateContact on the customer service (gRPC, idempotent by request ids derived from the
lead), then one local transaction marking the lead CONVERTED with its outbox event.

ConvertLead direct          client -> sales -> customer (1 in flight, then under load)
ConvertLead via Envoy       client -> Envoy -> sales -> customer
ConvertLead again via Envoy a retry of a converted lead: answered locally, no remote call
CreateCustomer direct       the remote part's first call alone, for scale
"""

from __future__ import annotations

import asyncio
import uuid

import grpc

from crm_bench.load import LoadResult, run_load
from crm_bench.suite import BenchEnv, machine_line

KEY = "convert"
TITLE = "Sales: ConvertLead latency (through the gateway vs direct, real customer service)"

MAX_CONCURRENCY = 16
LEADS_PER_SCENARIO = 1500


async def _create_leads(stub, metadata, run: str, label: str, count: int) -> list[str]:
    from crm.sales.v1 import common_pb2
    from crm.sales.v1 import lead_service_pb2 as pb

    names: list[str] = [""] * count
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            lead = await stub.CreateLead(
                pb.CreateLeadRequest(
                    lead=pb.Lead(
                        display_name=f"Bench {label} {i}",
                        company=f"Bench Co {run} {label} {i}",
                        email_addresses=[f"lead-{run}-{label}-{i}@bench.example"],
                        source_channel=common_pb2.LEAD_SOURCE_CHANNEL_WEB_FORM,
                        owner="bench",
                    )
                ),
                metadata=metadata,
            )
            names[i] = lead.name

    await asyncio.gather(*(worker() for _ in range(16)))
    return names


async def measure(env: BenchEnv) -> str:
    from crm.customer.v1 import customer_pb2 as cpb
    from crm.customer.v1 import customer_service_pb2 as crpc
    from crm.customer.v1 import customer_service_pb2_grpc as crpc_grpc
    from crm.sales.v1 import lead_service_pb2 as pb
    from crm.sales.v1 import lead_service_pb2_grpc as rpc_grpc

    metadata = env.metadata
    concurrency = min(env.concurrency, MAX_CONCURRENCY)
    run = uuid.uuid4().hex[:8]
    results: list[LoadResult] = []
    async with (
        grpc.aio.insecure_channel(env.direct["sales"]) as direct_channel,
        grpc.aio.insecure_channel(env.gateway) as gateway_channel,
        grpc.aio.insecure_channel(env.direct["customer"]) as customer_channel,
    ):
        direct = rpc_grpc.LeadServiceStub(direct_channel)
        gateway = rpc_grpc.LeadServiceStub(gateway_channel)
        customers = crpc_grpc.CustomerServiceStub(customer_channel)

        async def convert_scenario(label: str, stub, in_flight: int) -> LoadResult:
            slug = uuid.uuid4().hex[:6]
            count = LEADS_PER_SCENARIO if in_flight > 1 else LEADS_PER_SCENARIO // 5
            leads = await _create_leads(direct, metadata, run, slug, count)
            return await run_load(
                label,
                lambda i: stub.ConvertLead(pb.ConvertLeadRequest(name=leads[i]), metadata=metadata),
                concurrency=in_flight,
                seconds=env.seconds,
                max_calls=len(leads),
            )

        # One call in flight: the latency of a conversion itself; then under load.
        results.append(await convert_scenario("ConvertLead direct, 1 in flight", direct, 1))
        results.append(await convert_scenario("ConvertLead via Envoy, 1 in flight", gateway, 1))
        results.append(await convert_scenario("ConvertLead direct", direct, concurrency))
        results.append(await convert_scenario("ConvertLead via Envoy", gateway, concurrency))
        listed = await direct.ListLeads(
            pb.ListLeadsRequest(filter="status = LEAD_STATUS_CONVERTED", page_size=200), metadata=metadata
        )
        converted = [lead.name for lead in listed.leads]
        results.append(
            await run_load(
                "ConvertLead again via Envoy",
                lambda i: gateway.ConvertLead(
                    pb.ConvertLeadRequest(name=converted[i % len(converted)]), metadata=metadata
                ),
                concurrency=concurrency,
                seconds=env.seconds,
            )
        )
        results.append(
            await run_load(
                "CreateCustomer direct",
                lambda i: customers.CreateCustomer(
                    crpc.CreateCustomerRequest(
                        customer=cpb.Customer(
                            display_name=f"Bench direct {run} {i}",
                            email_addresses=[cpb.EmailAddress(address=f"cc-{run}-{i}@bench.example")],
                        )
                    ),
                    metadata=metadata,
                ),
                concurrency=concurrency,
                seconds=env.seconds,
            )
        )
    for result in results:
        print(
            f"  {result.scenario:36s} {result.rps:8.0f} req/s  p50 {result.p50:6.1f} ms"
            f"  p99 {result.p99:6.1f} ms  ({result.calls} calls, {result.errors} errors)",
            flush=True,
        )
    return render(results, seconds=env.seconds, concurrency=concurrency)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def render(results: list[LoadResult], *, seconds: float, concurrency: int) -> str:
    by = {r.scenario: r for r in results}
    direct, envoy = by["ConvertLead direct"], by["ConvertLead via Envoy"]
    direct1, envoy1 = by["ConvertLead direct, 1 in flight"], by["ConvertLead via Envoy, 1 in flight"]
    create = by["CreateCustomer direct"]
    lines = [
        machine_line(
            f"1, then {concurrency} calls in flight, up to {seconds:.0f} s or {LEADS_PER_SCENARIO} "
            "fresh leads per conversion scenario after 1 s warm-up; sales and customer on SQLite "
            "(one writer each), NATS and Envoy on the same machine. Every conversion creates a "
            "customer and a contact remotely and commits the lead with its LeadConverted event."
        ),
        "",
        "| scenario | req/s | p50 ms | p99 ms | calls | errors |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {r.scenario} | {r.rps:.0f} | {r.p50:.1f} | {r.p99:.1f} | {r.calls} | {r.errors} |"
            for r in results
        ),
        "",
        "| ratio | throughput | p50 latency | p99 latency |",
        "|---|---:|---:|---:|",
        f"| ConvertLead, 1 in flight: via Envoy / direct | {_ratio(envoy1.rps, direct1.rps)} "
        f"| {_ratio(envoy1.p50, direct1.p50)} | {_ratio(envoy1.p99, direct1.p99)} |",
        f"| ConvertLead: via Envoy / direct | {_ratio(envoy.rps, direct.rps)} "
        f"| {_ratio(envoy.p50, direct.p50)} | {_ratio(envoy.p99, direct.p99)} |",
        f"| ConvertLead direct / CreateCustomer direct | {_ratio(direct.rps, create.rps)} "
        f"| {_ratio(direct.p50, create.p50)} | {_ratio(direct.p99, create.p99)} |",
    ]
    return "\n".join(lines)
