"""python -m crm_bench [--seconds S] [--concurrency C]: the foundation benchmark.

Starts the real platform the way `make run` does (NATS, the customer service on
SQLite, Envoy) on free ports in a temporary data directory, plus a bare grpc.aio
echo server, and measures in one run, side by side:

  echo (direct)            the ceiling: a Python gRPC server that does nothing
  GetCustomer   direct / through Envoy
  CreateCustomer direct / through Envoy   (outbox event included in every create)

It prints requests/s, p50 and p99 and the ratios (gateway / direct, service /
echo), and writes them to docs/benchmarks.md between this scenario's markers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import grpc

from crm_bench.load import LoadResult, run_load
from crm_bench.report import write_section

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_echo(port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "crm_bench.echo_server", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != "echo ready":
        raise RuntimeError("echo server did not start")
    return process


async def measure(
    gateway: str, direct: str, echo: str, token: str, *, seconds: float, concurrency: int
) -> list[LoadResult]:
    from crm.customer.v1 import customer_pb2 as pb
    from crm.customer.v1 import customer_service_pb2 as rpc
    from crm.customer.v1 import customer_service_pb2_grpc as rpc_grpc

    metadata = (("authorization", f"Bearer {token}"),)
    results: list[LoadResult] = []
    async with (
        grpc.aio.insecure_channel(direct) as direct_channel,
        grpc.aio.insecure_channel(gateway) as gateway_channel,
        grpc.aio.insecure_channel(echo) as echo_channel,
    ):
        direct_stub = rpc_grpc.CustomerServiceStub(direct_channel)
        gateway_stub = rpc_grpc.CustomerServiceStub(gateway_channel)
        echo_call = echo_channel.unary_unary("/bench.Echo/Echo")
        run = uuid.uuid4().hex[:8]

        names = []
        for i in range(200):
            created = await direct_stub.CreateCustomer(
                rpc.CreateCustomerRequest(
                    customer=pb.Customer(
                        display_name=f"Seed {i}",
                        industry="retail",
                        email_addresses=[pb.EmailAddress(address=f"seed-{run}-{i}@bench.example")],
                    )
                ),
                metadata=metadata,
            )
            names.append(created.name)
        payload = rpc.GetCustomerRequest(name=names[0]).SerializeToString()

        def get(stub):
            return lambda i: stub.GetCustomer(
                rpc.GetCustomerRequest(name=names[i % len(names)]), metadata=metadata
            )

        def create(stub, label):
            return lambda i: stub.CreateCustomer(
                rpc.CreateCustomerRequest(
                    customer=pb.Customer(
                        display_name=f"Bench {label} {i}",
                        email_addresses=[pb.EmailAddress(address=f"{label}-{run}-{i}@bench.example")],
                    )
                ),
                metadata=metadata,
            )

        scenarios = [
            ("echo (bare grpc.aio, direct)", lambda i: echo_call(payload)),
            ("GetCustomer direct", get(direct_stub)),
            ("GetCustomer via Envoy", get(gateway_stub)),
            ("CreateCustomer direct", create(direct_stub, "d")),
            ("CreateCustomer via Envoy", create(gateway_stub, "g")),
        ]
        for label, call in scenarios:
            result = await run_load(label, call, concurrency=concurrency, seconds=seconds)
            print(
                f"  {label:32s} {result.rps:8.0f} req/s  p50 {result.p50:6.1f} ms  p99 {result.p99:6.1f} ms"
                f"  ({result.calls} calls, {result.errors} errors)",
                flush=True,
            )
            results.append(result)
    return results


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def render(results: list[LoadResult], *, seconds: float, concurrency: int) -> str:
    by = {r.scenario: r for r in results}
    echo = by["echo (bare grpc.aio, direct)"]
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; {concurrency} calls in flight, {seconds:.0f} s per scenario "
        "after 1 s warm-up; client, service, NATS and Envoy share the machine. Customer service on SQLite "
        "(one writer), events through the outbox to JetStream.",
        "",
        "| scenario | req/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|",
        *(f"| {r.scenario} | {r.rps:.0f} | {r.p50:.1f} | {r.p99:.1f} | {r.errors} |" for r in results),
        "",
        "| ratio | throughput | p50 latency |",
        "|---|---:|---:|",
    ]
    for rpc_name in ("GetCustomer", "CreateCustomer"):
        direct, gateway = by[f"{rpc_name} direct"], by[f"{rpc_name} via Envoy"]
        throughput, latency = ratio(gateway.rps, direct.rps), ratio(gateway.p50, direct.p50)
        lines.append(f"| {rpc_name}: via Envoy / direct | {throughput} | {latency} |")
    for rpc_name in ("GetCustomer", "CreateCustomer"):
        direct = by[f"{rpc_name} direct"]
        throughput, latency = ratio(direct.rps, echo.rps), ratio(direct.p50, echo.p50)
        lines.append(f"| {rpc_name} direct / bare echo | {throughput} | {latency} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", "8")))
    parser.add_argument("--concurrency", type=int, default=int(os.environ.get("BENCH_CONCURRENCY", "64")))
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()

    data = tempfile.mkdtemp(prefix="crm-bench-")
    ports = {
        name: free_port() for name in ("gateway", "admin", "nats", "customer", "customer_metrics", "echo")
    }
    os.environ.update(
        {
            "CRM_DATA_DIR": data,
            "CRM_GATEWAY_PORT": str(ports["gateway"]),
            "CRM_GATEWAY_ADMIN_PORT": str(ports["admin"]),
            "CRM_DEVSTACK_NATS_PORT": str(ports["nats"]),
            "CRM_DEVSTACK_CUSTOMER_PORT": str(ports["customer"]),
            "CRM_DEVSTACK_CUSTOMER_METRICS_PORT": str(ports["customer_metrics"]),
            "CRM_CUSTOMER_LOG_LEVEL": "WARNING",
        }
    )
    from crm_gateway.devstack import build_stack
    from crm_shared.auth.dev_keys import mint_token

    stack = build_stack()
    echo = None
    try:
        stack.start()
        echo = start_echo(ports["echo"])
        token = mint_token(
            stack.keys,
            subject="bench",
            roles=["admin"],
            team="bench",
            issuer=stack.catalog.jwt_issuer,
            audience=stack.catalog.jwt_audience,
            ttl_seconds=3600,
        )
        print(
            f"\nfoundation benchmark: {args.concurrency} in flight, {args.seconds:.0f} s per scenario",
            flush=True,
        )
        started = time.monotonic()
        results = asyncio.run(
            measure(
                f"127.0.0.1:{ports['gateway']}",
                f"127.0.0.1:{ports['customer']}",
                f"127.0.0.1:{ports['echo']}",
                token,
                seconds=args.seconds,
                concurrency=args.concurrency,
            )
        )
        section = render(results, seconds=args.seconds, concurrency=args.concurrency)
        print("\n" + section + f"\n\n(total {time.monotonic() - started:.0f} s)")
        if not args.no_write:
            write_section(
                REPO / "docs" / "benchmarks.md",
                "foundation",
                "Foundation: customer service, gateway, echo",
                section,
            )
            print("written to docs/benchmarks.md")
    finally:
        if echo is not None:
            echo.terminate()
            echo.wait(10)
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
