"""Call any CRM RPC with a JSON request (grpcurl is not installable here: neither PyPI nor npm has it).

  python -m crm_gateway.grpc_call crm.customer.v1.CustomerService/ListCustomers '{"page_size": 5}'
  python -m crm_gateway.grpc_call grpc.health.v1.Health/Check '{}'

Request and response types come from the generated stubs (shared/gen); JSON uses proto field
names. The token comes from --token, else $CRM_TOKEN, else a dev admin token is minted from the
dev keys. Unary and server-streaming methods are supported. Errors print the status with its
details as JSON and exit 1.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import sys

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_status import rpc_status


def _load_descriptors() -> None:
    """Import every generated *_pb2 module so its types are in the default descriptor pool."""
    from google.rpc import error_details_pb2, status_pb2  # noqa: F401 - registers detail types
    from grpc_health.v1 import health_pb2  # noqa: F401

    import crm

    for module in pkgutil.walk_packages(crm.__path__, prefix="crm."):
        if module.name.endswith("_pb2"):
            importlib.import_module(module.name)


def _to_json(message) -> str:
    return json_format.MessageToJson(message, preserving_proto_field_name=True, indent=2)


def _default_token() -> str:
    from crm_gateway.catalog import load_catalog
    from crm_gateway.tokens import default_keys_dir
    from crm_shared.auth.dev_keys import generate_dev_keys, mint_token

    catalog = load_catalog()
    print("grpc_call: no --token or $CRM_TOKEN, using a dev admin token (alice, team east)", file=sys.stderr)
    return mint_token(
        generate_dev_keys(default_keys_dir()),
        subject="alice",
        roles=["admin"],
        team="east",
        issuer=catalog.jwt_issuer,
        audience=catalog.jwt_audience,
        ttl_seconds=300,
    )


def call(target: str, method_path: str, request_json: str, token: str | None, timeout: float) -> int:
    _load_descriptors()
    service_name, _, method_name = method_path.strip("/").rpartition("/")
    pool = descriptor_pool.Default()
    try:
        method = pool.FindServiceByName(service_name).methods_by_name[method_name]
    except KeyError:
        print(f"grpc_call: unknown method {method_path!r} (use package.Service/Method)", file=sys.stderr)
        return 2
    if method.client_streaming:
        print("grpc_call: client-streaming methods are not supported", file=sys.stderr)
        return 2
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    request = json_format.Parse(request_json or "{}", request_class())
    metadata = [("authorization", f"Bearer {token}")] if token else []
    path = f"/{service_name}/{method_name}"
    with grpc.insecure_channel(target) as channel:
        try:
            if method.server_streaming:
                stub = channel.unary_stream(
                    path,
                    request_serializer=request_class.SerializeToString,
                    response_deserializer=response_class.FromString,
                )
                for item in stub(request, metadata=metadata, timeout=timeout):
                    print(json_format.MessageToJson(item, preserving_proto_field_name=True, indent=None))
            else:
                stub = channel.unary_unary(
                    path,
                    request_serializer=request_class.SerializeToString,
                    response_deserializer=response_class.FromString,
                )
                print(_to_json(stub(request, metadata=metadata, timeout=timeout)))
        except grpc.RpcError as error:
            status = rpc_status.from_call(error)  # type: ignore[arg-type]
            if status is not None:
                print(_to_json(status), file=sys.stderr)
            else:
                print(
                    json.dumps({"code": error.code().name, "message": error.details()}, indent=2),  # type: ignore[attr-defined]
                    file=sys.stderr,
                )
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m crm_gateway.grpc_call",
        description="call a CRM RPC through the gateway with a JSON request",
    )
    parser.add_argument(
        "method", help="package.Service/Method, e.g. crm.customer.v1.CustomerService/GetCustomer"
    )
    parser.add_argument(
        "request", nargs="?", default="{}", help="request as JSON (proto field names); default {}"
    )
    parser.add_argument(
        "--target",
        default=os.environ.get("CRM_GATEWAY_TARGET", "127.0.0.1:8080"),
        help="host:port (default $CRM_GATEWAY_TARGET or 127.0.0.1:8080)",
    )
    parser.add_argument(
        "--token", default=os.environ.get("CRM_TOKEN"), help="bearer token (default $CRM_TOKEN)"
    )
    parser.add_argument("--no-token", action="store_true", help="send no authorization header")
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    token = None if args.no_token else (args.token or _default_token())
    return call(args.target, args.method, args.request, token, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
