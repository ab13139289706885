"""Tickets suite: CreateTicket throughput against the real servicedesk (SQLite), with the customer
service up and with it down, side by side.

Each CreateTicket numbers the ticket, inserts it with its outbox event and SLA timers in one
transaction; with a customer it first asks the customer service for the customer's snapshot
(the caller's token, a deadline). When the customer service is down the ticket is still created,
snapshot PENDING, and a durable timer fetches it later.

CreateTicket, no customer       no remote call: the local transaction alone
CreateTicket, customer up       + GetCustomer on the real customer service (snapshot FETCHED)
CreateTicket, customer down     a second servicedesk process whose customer service is a closed
                                port: the call fails fast, the ticket is created PENDING
GetTicket                       a plain read, for scale
"""

from __future__ import annotations

import socket
import sys
import uuid

import grpc

from crm_bench.load import LoadResult, run_load
from crm_bench.suite import BenchEnv, machine_line

KEY = "tickets"
TITLE = "Servicedesk: CreateTicket throughput (customer service up vs down, SQLite)"

MAX_CONCURRENCY = 16
CUSTOMERS = 50
SAMPLE = 20  # tickets per scenario whose snapshot state is checked afterwards


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_servicedesk_without_customers(env: BenchEnv):
    """Another servicedesk process (own SQLite file, the stack's NATS) whose customer service is down."""
    from crm_gateway import devstack

    spec = env.stack.catalog.service("servicedesk")
    port, dead = _free_port(), _free_port()  # nothing listens on `dead`: connection refused
    service_env = env.stack.service_env(spec)
    service_env.update(
        {
            f"{spec.env_prefix}GRPC_PORT": str(port),
            f"{spec.env_prefix}METRICS_PORT": str(_free_port()),
            f"{spec.env_prefix}DATABASE_URL": env.database_url("servicedesk-no-customer"),
            f"{spec.env_prefix}CUSTOMER_TARGET": f"127.0.0.1:{dead}",
        }
    )
    child = devstack.Child("servicedesk-no-customer", [sys.executable, "-m", spec.module], env=service_env)
    child.start()
    try:
        devstack.wait_until_ready(
            "servicedesk without customers",
            lambda: devstack.grpc_serving(port),
            child,
            devstack.SERVICE_START_TIMEOUT,
        )
    except BaseException:
        child.stop()
        raise
    return child, f"127.0.0.1:{port}"


async def _customers(env: BenchEnv, run: str) -> list[str]:
    from crm.customer.v1 import customer_pb2 as cpb
    from crm.customer.v1 import customer_service_pb2 as crpc
    from crm.customer.v1 import customer_service_pb2_grpc as crpc_grpc

    async with grpc.aio.insecure_channel(env.direct["customer"]) as channel:
        stub = crpc_grpc.CustomerServiceStub(channel)
        names = []
        for i in range(CUSTOMERS):
            created = await stub.CreateCustomer(
                crpc.CreateCustomerRequest(
                    customer=cpb.Customer(
                        display_name=f"Bench support {run} {i}",
                        email_addresses=[cpb.EmailAddress(address=f"sd-{run}-{i}@bench.example")],
                    )
                ),
                metadata=env.metadata,
            )
            names.append(created.name)
    return names


async def measure(env: BenchEnv) -> str:
    from crm.servicedesk.v1 import ticket_service_pb2 as pb
    from crm.servicedesk.v1 import ticket_service_pb2_grpc as rpc_grpc

    metadata = env.metadata
    concurrency = min(env.concurrency, MAX_CONCURRENCY)
    run = uuid.uuid4().hex[:8]
    customers = await _customers(env, run)
    results: list[LoadResult] = []
    created: dict[str, list[str]] = {}
    child, no_customer_address = _start_servicedesk_without_customers(env)
    try:
        async with (
            grpc.aio.insecure_channel(env.direct["servicedesk"]) as channel,
            grpc.aio.insecure_channel(no_customer_address) as down_channel,
        ):
            desk, down = rpc_grpc.TicketServiceStub(channel), rpc_grpc.TicketServiceStub(down_channel)

            async def create(stub, label: str, i: int, customer: str) -> None:
                ticket = await stub.CreateTicket(
                    pb.CreateTicketRequest(
                        ticket=pb.Ticket(subject=f"Bench {run} {label} {i}", customer=customer)
                    ),
                    metadata=metadata,
                )
                names = created.setdefault(label, [])
                if len(names) < SAMPLE:
                    names.append(ticket.name)

            scenarios = [
                ("CreateTicket, no customer", desk, lambda i: ""),
                ("CreateTicket, customer up", desk, lambda i: customers[i % len(customers)]),
                ("CreateTicket, customer down", down, lambda i: customers[i % len(customers)]),
            ]
            for label, stub, customer_of in scenarios:
                results.append(
                    await run_load(
                        label,
                        lambda i, stub=stub, label=label, customer_of=customer_of: create(
                            stub, label, i, customer_of(i)
                        ),
                        concurrency=concurrency,
                        seconds=env.seconds,
                    )
                )
            sample = created.get("CreateTicket, no customer", [""])
            results.append(
                await run_load(
                    "GetTicket",
                    lambda i: desk.GetTicket(
                        pb.GetTicketRequest(name=sample[i % len(sample)]), metadata=metadata
                    ),
                    concurrency=concurrency,
                    seconds=env.seconds,
                )
            )
            states = {}
            for label, stub in (("CreateTicket, customer up", desk), ("CreateTicket, customer down", down)):
                found = [
                    (
                        await stub.GetTicket(pb.GetTicketRequest(name=name), metadata=metadata)
                    ).customer_snapshot.state
                    for name in created.get(label, [])
                ]
                states[label] = ", ".join(
                    sorted(
                        {
                            pb.CustomerSnapshotState.Name(s).removeprefix("CUSTOMER_SNAPSHOT_STATE_")
                            for s in found
                        }
                    )
                )
    finally:
        child.stop()
    for result in results:
        print(
            f"  {result.scenario:32s} {result.rps:8.0f} req/s  p50 {result.p50:6.1f} ms"
            f"  p99 {result.p99:6.1f} ms  ({result.calls} calls, {result.errors} errors)",
            flush=True,
        )
    print(f"  snapshot states of sampled tickets: {states}", flush=True)
    return render(results, seconds=env.seconds, concurrency=concurrency, states=states)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def render(results: list[LoadResult], *, seconds: float, concurrency: int, states: dict[str, str]) -> str:
    by = {r.scenario: r for r in results}
    local, up, down = (
        by["CreateTicket, no customer"],
        by["CreateTicket, customer up"],
        by["CreateTicket, customer down"],
    )
    up_states = states.get("CreateTicket, customer up") or "n/a"
    down_states = states.get("CreateTicket, customer down") or "n/a"
    lines = [
        machine_line(
            f"{concurrency} calls in flight, {seconds:.0f} s per scenario after 1 s warm-up; the servicedesk "
            "on SQLite (one writer). Customer up: the stack's servicedesk asks the real customer service for "
            "the snapshot inside CreateTicket. Customer down: a second servicedesk process (own SQLite file, "
            "same NATS) whose customer service address refuses connections. Snapshot states of up to "
            f"{SAMPLE} sampled tickets right after creation: up = {up_states}, down = {down_states}."
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
        f"| customer up / no customer | {_ratio(up.rps, local.rps)} "
        f"| {_ratio(up.p50, local.p50)} | {_ratio(up.p99, local.p99)} |",
        f"| customer down / customer up | {_ratio(down.rps, up.rps)} "
        f"| {_ratio(down.p50, up.p50)} | {_ratio(down.p99, up.p99)} |",
    ]
    return "\n".join(lines)
