"""Ask a gRPC server how it is: `python -m crm_shared.grpc.healthcheck`, for Docker HEALTHCHECK and humans.

    python -m crm_shared.grpc.healthcheck [--address 127.0.0.1:50051] [--service NAME] [--timeout 2]

Calls grpc.health.v1.Health/Check. Exit 0 when the answer is SERVING (the status goes to stdout);
1 otherwise — NOT_SERVING while starting or draining, an unknown service name, an unreachable
port, no answer in time — with a one-line reason on stderr. The default service "" is the
server's overall status, which crm_shared.runtime sets to SERVING only once the background
workers are up too.

Kubernetes does not need this (its native gRPC probes ask the same question); `docker run` and
Compose do, and it is the quickest way to ask a running service by hand.
"""

from __future__ import annotations

import argparse
import sys

DEFAULT_ADDRESS = "127.0.0.1:50051"
EXIT_SERVING = 0
EXIT_UNHEALTHY = 1


def check(address: str, service: str = "", timeout: float = 2.0) -> tuple[bool, str]:
    """(serving?, what the server said or why it could not be asked)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as error:
            code = error.code()
            if code == grpc.StatusCode.NOT_FOUND:
                return False, f"{address} does not know the service {service!r}"
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                return False, f"{address} did not answer within {timeout:g}s"
            if code == grpc.StatusCode.UNAVAILABLE:
                return False, f"{address} is unavailable: {_first_line(error.details())}"
            return False, f"{address} answered {code.name}: {_first_line(error.details())}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    target = f"service {service!r}" if service else "server"
    return response.status == health_pb2.HealthCheckResponse.SERVING, f"{address} {target}: {status}"


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else "no details"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m crm_shared.grpc.healthcheck",
        description="gRPC health check: exit 0 when SERVING, 1 otherwise.",
    )
    parser.add_argument("--address", default=DEFAULT_ADDRESS, help=f"host:port (default {DEFAULT_ADDRESS})")
    parser.add_argument(
        "--service", default="", help='fully-qualified gRPC service name (default "": the whole server)'
    )
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for the answer")
    args = parser.parse_args(argv)
    serving, message = check(args.address, args.service, args.timeout)
    if serving:
        print(message)
        return EXIT_SERVING
    print(message, file=sys.stderr)
    return EXIT_UNHEALTHY


if __name__ == "__main__":
    sys.exit(main())
