"""Micro benchmark: what the server interceptor chain costs a unary call.

Run: .venv/bin/python shared/tests/bench_grpc_interceptors.py [seconds-per-case]

Same in-process grpc.aio server and GetCustomer handler, called over a real
loopback channel, once with no interceptors and once with the full chain
(tracing with an SDK provider and no exporter, request id, metrics, drain gate,
JWT RS256 verification, protovalidate, error mapping). Prints calls/s and the
per-call overhead in CPU time (process CPU per call, client + server + grpc
threads), which stays meaningful when other processes load the machine; wall
calls/s do not. Client and server share one event loop, so absolute figures are
pessimistic; the difference is the point.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import grpc

from crm.customer.v1 import customer_pb2, customer_service_pb2, customer_service_pb2_grpc
from crm_shared.auth.jwt import JwtVerifier
from crm_shared.grpc.interceptors import server_interceptors
from crm_shared.observability.tracing import configure_tracing

CUSTOMER = "customers/0190a1b2-0000-7000-8000-0000000000aa"


class Servicer(customer_service_pb2_grpc.CustomerServiceServicer):
    async def GetCustomer(self, request, context):
        return customer_pb2.Customer(name=request.name, display_name="Acme")


def make_keys(directory: Path) -> tuple[JwtVerifier, str]:
    import json

    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="bench", use="sig")
    (directory / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    verifier = JwtVerifier.from_jwks_file(directory / "jwks.json", issuer="bench", audience="crm")
    now = int(time.time())
    claims = {"sub": "alice", "roles": ["admin"], "team": "east", "iss": "bench", "aud": "crm"}
    token = jwt.encode(
        {**claims, "iat": now, "exp": now + 3600}, key, algorithm="RS256", headers={"kid": "bench"}
    )
    return verifier, token


async def measure(interceptors: list, token: str, seconds: float, concurrency: int) -> tuple[float, float]:
    """(calls per wall second, process CPU µs per call: client + server + grpc threads)."""
    server = grpc.aio.server(interceptors=interceptors)
    customer_service_pb2_grpc.add_CustomerServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    metadata = (("authorization", f"Bearer {token}"),)
    request = customer_service_pb2.GetCustomerRequest(name=CUSTOMER)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = customer_service_pb2_grpc.CustomerServiceStub(channel)
            for _ in range(200):  # warm up: connection, handler caches, label children
                await stub.GetCustomer(request, metadata=metadata)
            done = 0
            deadline = time.perf_counter() + seconds

            async def caller() -> None:
                nonlocal done
                while time.perf_counter() < deadline:
                    await stub.GetCustomer(request, metadata=metadata)
                    done += 1

            started, cpu_started = time.perf_counter(), time.process_time()
            await asyncio.gather(*(caller() for _ in range(concurrency)))
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            return done / wall, cpu / done * 1e6
    finally:
        await server.stop(None)


async def main(seconds: float) -> None:
    configure_tracing("bench")
    with tempfile.TemporaryDirectory() as directory:
        verifier, token = make_keys(Path(directory))
    started = time.perf_counter()
    for _ in range(1000):
        verifier.verify(token)
    verify_us = (time.perf_counter() - started) * 1000
    print(f"JwtVerifier.verify (RS256, 2048-bit): {verify_us:.1f} µs/token")
    for concurrency in (1, 16):
        bare, bare_cpu = await measure([], token, seconds, concurrency)
        chain, chain_cpu = await measure(
            server_interceptors(domain="bench", verifier=verifier), token, seconds, concurrency
        )
        print(
            f"concurrency {concurrency:>2}: no interceptors {bare:6.0f} calls/s {bare_cpu:5.0f} CPU µs/call"
            f" | full chain {chain:6.0f} calls/s {chain_cpu:5.0f} CPU µs/call"
            f" | chain/bare {chain / bare:.2f} | +{chain_cpu - bare_cpu:.0f} CPU µs/call"
        )


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 3.0))
