"""Foundation suite: bare echo vs GetCustomer/CreateCustomer, direct and through Envoy.

echo (direct)             the ceiling: a Python gRPC server that does nothing
GetCustomer    direct / through Envoy
CreateCustomer direct / through Envoy   (outbox event included in every create)
"""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid

import grpc

from crm_bench.load import LoadResult, run_load
from crm_bench.suite import BenchEnv, machine_line

KEY = "foundation"
TITLE = "Foundation: customer service, gateway, echo"


def _free_port() -> int:
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


async def measure(env: BenchEnv) -> str:
    port = _free_port()
    echo = start_echo(port)
    try:
        results = await _measure(
            env.gateway,
            env.direct["customer"],
            f"127.0.0.1:{port}",
            env.token,
            seconds=env.seconds,
            concurrency=env.concurrency,
        )
    finally:
        echo.terminate()
        echo.wait(10)
    return render(results, seconds=env.seconds, concurrency=env.concurrency)


async def _measure(
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
        machine_line(
            f"{concurrency} calls in flight, {seconds:.0f} s per scenario after 1 s warm-up; client, "
            "service, NATS and Envoy share the machine. Customer service on SQLite (one writer), events "
            "through the outbox to JetStream."
        ),
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
