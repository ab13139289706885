"""A bare grpc.aio echo server: the ceiling any Python gRPC service on this machine is measured against."""

from __future__ import annotations

import argparse
import asyncio
import signal

import grpc

METHOD = "/bench.Echo/Echo"


def _identity(payload: bytes) -> bytes:
    return payload


async def _echo(request: bytes, context) -> bytes:
    return request


async def serve(port: int) -> None:
    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(
        _echo, request_deserializer=_identity, response_serializer=_identity
    )
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler})])
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("echo ready", flush=True)
    await stop.wait()
    await server.stop(1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))
