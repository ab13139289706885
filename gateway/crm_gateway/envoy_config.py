"""Renders the Envoy v3 bootstrap for the CRM gateway from services.yaml.

One listener serves both wire formats on one port (codec AUTO: HTTP/1.1 REST/JSON
and h2c gRPC). Filters, in order:

1. jwt_authn — every request needs a valid token except gRPC health and the REST
   health path; the token is forwarded (services verify it again).
2. grpc_json_transcoder — REST/JSON → gRPC from the google.api.http annotations.
   It rewrites the path to /<package.Service>/<Method> and clears the route
   cache, so the same per-service prefix routes serve REST and gRPC. Real gRPC
   requests (content-type application/grpc) pass through untouched.
3. router.

The transcoder needs google.rpc.Status and the error detail types in its descriptor
to turn gRPC errors into JSON; `gateway_descriptor` adds them to the image that
`make proto` builds (crm protos do not import them).

CLI: python -m crm_gateway.envoy_config --out FILE --descriptor build/crm.binpb --jwks PATH
     [--profile dev|k8s] [--services services.yaml]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import descriptor_pb2

from crm_gateway.catalog import Catalog, RateLimit, ServiceSpec, load_catalog

JWT_PROVIDER = "crm"
# Set by the first filter to the method the client used: the transcoder turns every REST call
# into POST and sets no x-envoy-original-method, so the access log would say POST for a GET.
CLIENT_METHOD_HEADER = "x-crm-client-method"
GRPC_HEALTH_PREFIX = "/grpc.health.v1.Health/"
HEALTH_CHECK_TIMEOUT = 1.0
HEALTH_CHECK_INTERVAL = 5.0
MAX_BODY_BYTES = 4 * 1024 * 1024
# An edge proxy caps open client connections (Envoy warns at start-up when nothing does).
MAX_DOWNSTREAM_CONNECTIONS = 50_000


@dataclass(frozen=True)
class Profile:
    """Everything that differs between a laptop and Kubernetes: addresses only."""

    name: str
    listen_address: str
    admin_address: str

    def upstream(self, spec: ServiceSpec) -> tuple[str, int]:
        if self.name == "k8s":
            return spec.name, spec.k8s_port
        return "127.0.0.1", spec.dev_port


PROFILES = {
    "dev": Profile("dev", listen_address="127.0.0.1", admin_address="127.0.0.1"),
    # Admin (/ready, /stats/prometheus) must be reachable by kubelet probes and Prometheus;
    # restrict port access with a NetworkPolicy.
    "k8s": Profile("k8s", listen_address="0.0.0.0", admin_address="0.0.0.0"),
}


# --- descriptor ------------------------------------------------------------------------------


def _rpc_status_files() -> list[descriptor_pb2.FileDescriptorProto]:
    from google.rpc import code_pb2, error_details_pb2, status_pb2

    files = []
    for module in (code_pb2, status_pb2, error_details_pb2):
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        files.append(proto)
    return files


def _topological(files: list[descriptor_pb2.FileDescriptorProto]) -> list[descriptor_pb2.FileDescriptorProto]:
    by_name = {f.name: f for f in files}
    ordered: list[descriptor_pb2.FileDescriptorProto] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done or name not in by_name:
            return
        done.add(name)
        for dependency in by_name[name].dependency:
            visit(dependency)
        ordered.append(by_name[name])

    for f in files:
        visit(f.name)
    return ordered


def gateway_descriptor(source: bytes) -> descriptor_pb2.FileDescriptorSet:
    """The `make proto` image plus google/rpc/{code,status,error_details}.proto, deps first."""
    image = descriptor_pb2.FileDescriptorSet.FromString(source)
    files = list(image.file)
    present = {f.name for f in files}
    files += [f for f in _rpc_status_files() if f.name not in present]
    missing = {d for f in files for d in f.dependency} - {f.name for f in files}
    if missing:
        raise ValueError(f"descriptor image lacks imports {sorted(missing)}: build it with --include_imports")
    return descriptor_pb2.FileDescriptorSet(file=_topological(files))


def streaming_methods(image: descriptor_pb2.FileDescriptorSet) -> dict[str, list[str]]:
    """Full service name → names of its client- or server-streaming methods; every service present."""
    result: dict[str, list[str]] = {}
    for f in image.file:
        for service in f.service:
            full = f"{f.package}.{service.name}" if f.package else service.name
            result[full] = [m.name for m in service.method if m.client_streaming or m.server_streaming]
    return result


# --- config pieces ---------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    return f"{seconds:g}s"


def _socket(address: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": address, "port_value": port}}


def _access_log() -> list[dict[str, Any]]:
    return [
        {
            "name": "envoy.access_loggers.stdout",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
                "log_format": {
                    "json_format": {
                        "time": "%START_TIME%",
                        "logger": "envoy.access",
                        # The transcoder rewrites REST requests to POST /<Service>/<Method>:
                        # log what the client sent, and the RPC it became.
                        "method": f"%REQ({CLIENT_METHOD_HEADER.upper()}?:METHOD)%",
                        "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
                        "rpc": "%REQ(:PATH)%",
                        "protocol": "%PROTOCOL%",
                        "response_code": "%RESPONSE_CODE%",
                        "grpc_status": "%GRPC_STATUS(NUMBER)%",
                        "response_flags": "%RESPONSE_FLAGS%",
                        "duration_ms": "%DURATION%",
                        "upstream_cluster": "%UPSTREAM_CLUSTER%",
                        "request_id": "%REQ(X-REQUEST-ID)%",
                        "traceparent": "%REQ(TRACEPARENT)%",
                        "user_agent": "%REQ(USER-AGENT)%",
                    }
                },
            },
        }
    ]


def _client_method_filter() -> dict[str, Any]:
    return {
        "name": "envoy.filters.http.header_mutation",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
            "mutations": {
                "request_mutations": [
                    {
                        "append": {
                            "header": {"key": CLIENT_METHOD_HEADER, "value": "%REQ(:METHOD)%"},
                            # Overwrite: a client cannot plant its own value.
                            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                        }
                    }
                ]
            },
        },
    }


def _jwt_filter(catalog: Catalog, jwks_path: str) -> dict[str, Any]:
    return {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {
                JWT_PROVIDER: {
                    "issuer": catalog.jwt_issuer,
                    "audiences": [catalog.jwt_audience],
                    "local_jwks": {"filename": jwks_path},
                    # Keep Authorization on the upstream request: services verify the token again.
                    "forward": True,
                }
            },
            # First match wins; paths are normalized by the HCM before this runs.
            "rules": [
                {"match": {"prefix": GRPC_HEALTH_PREFIX}},
                {"match": {"path": catalog.rest_health_path}},
                {"match": {"prefix": "/"}, "requires": {"provider_name": JWT_PROVIDER}},
            ],
        },
    }


def _transcoder_filter(catalog: Catalog, descriptor_path: str) -> dict[str, Any]:
    return {
        "name": "envoy.filters.http.grpc_json_transcoder",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.grpc_json_transcoder.v3"
            ".GrpcJsonTranscoder",
            "proto_descriptor": descriptor_path,
            "services": [name for spec in catalog.services for name in spec.grpc_services],
            "convert_grpc_status": True,
            "print_options": {
                "add_whitespace": False,
                "always_print_primitive_fields": True,
                "always_print_enums_as_ints": False,
                "preserve_proto_field_names": True,
            },
            # REST calls with a query parameter that maps to no field get 400 instead of passing
            # through untranscoded (which would end as a confusing 404 from the router).
            "request_validation_options": {"reject_unknown_query_parameters": True},
            # "+" in a query string is a space (form encoding: Python's urlencode, requests'
            # params=, JS URLSearchParams); without this `?filter=tier+%3D+X` reaches the
            # service as "tier+=+X" and fails as INVALID_FILTER.
            "query_param_unescape_plus": True,
            # Only methods with google.api.http bindings are REST; gRPC paths are never re-mapped.
            "auto_mapping": False,
            "max_request_body_size": MAX_BODY_BYTES,
            "max_response_body_size": MAX_BODY_BYTES,
        },
    }


LOCAL_RATE_LIMIT = "envoy.filters.http.local_ratelimit"
_LOCAL_RATE_LIMIT_TYPE = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"


def _local_rate_limit_filter() -> dict[str, Any]:
    """In the chain after the transcoder (so REST calls are limited by the RPC they become); it
    does nothing on routes without a per-route token bucket."""
    return {
        "name": LOCAL_RATE_LIMIT,
        "typed_config": {"@type": _LOCAL_RATE_LIMIT_TYPE, "stat_prefix": "crm_local_rate_limit"},
    }


def _rate_limited_route(spec: ServiceSpec, limit: RateLimit) -> dict[str, Any]:
    always = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}
    return {
        "name": f"{limit.method} (rate limited)",
        "match": {"path": f"/{limit.method}"},
        "route": {
            "cluster": spec.cluster,
            "timeout": _duration(spec.timeout),
            "max_stream_duration": {"grpc_timeout_header_max": _duration(spec.timeout)},
        },
        "typed_per_filter_config": {
            LOCAL_RATE_LIMIT: {
                "@type": _LOCAL_RATE_LIMIT_TYPE,
                "stat_prefix": "rate_limit_" + limit.method.replace(".", "_").replace("/", "_"),
                "token_bucket": {
                    "max_tokens": limit.requests,
                    "tokens_per_fill": limit.requests,
                    "fill_interval": _duration(limit.per),
                },
                "filter_enabled": {"runtime_key": "crm_rate_limit_enabled", **always},
                "filter_enforced": {"runtime_key": "crm_rate_limit_enforced", **always},
                # gRPC callers get RESOURCE_EXHAUSTED (the canonical code for rate limits) instead
                # of the UNAVAILABLE that HTTP 429 maps to; REST callers get 429.
                "rate_limited_as_resource_exhausted": True,
                "response_headers_to_add": [
                    {
                        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                        "header": {"key": "x-crm-rate-limited", "value": "true"},
                    }
                ],
            }
        },
    }


def _service_routes(spec: ServiceSpec, streaming: dict[str, list[str]]) -> list[dict[str, Any]]:
    # Exact paths first: rate-limited methods, then streaming ones, then each service's prefix.
    routes: list[dict[str, Any]] = [_rate_limited_route(spec, limit) for limit in spec.rate_limits]
    for service in spec.grpc_services:
        for method in streaming.get(service, []):
            routes.append(
                {
                    "name": f"{service}/{method}",
                    "match": {"path": f"/{service}/{method}"},
                    "route": {
                        "cluster": spec.cluster,
                        "timeout": _duration(spec.streaming_timeout),
                        "max_stream_duration": {"grpc_timeout_header_max": _duration(spec.streaming_timeout)},
                    },
                }
            )
        routes.append(
            {
                "name": service,
                "match": {"prefix": f"/{service}/"},
                "route": {
                    "cluster": spec.cluster,
                    "timeout": _duration(spec.timeout),
                    # A client's grpc-timeout is honoured up to the route timeout.
                    "max_stream_duration": {"grpc_timeout_header_max": _duration(spec.timeout)},
                },
            }
        )
    return routes


def _cluster(spec: ServiceSpec, catalog: Catalog, profile: Profile) -> dict[str, Any]:
    address, port = profile.upstream(spec)
    return {
        "name": spec.cluster,
        "type": "STRICT_DNS",
        "dns_lookup_family": "V4_ONLY",
        "connect_timeout": _duration(catalog.connect_timeout),
        "lb_policy": "ROUND_ROBIN",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        "load_assignment": {
            "cluster_name": spec.cluster,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _socket(address, port)}}]}],
        },
        "health_checks": [
            {
                "timeout": _duration(HEALTH_CHECK_TIMEOUT),
                "interval": _duration(HEALTH_CHECK_INTERVAL),
                "no_traffic_interval": _duration(HEALTH_CHECK_INTERVAL),
                "unhealthy_threshold": 2,
                "healthy_threshold": 1,
                # grpc.health.v1 Check with service "" = the whole server (NOT_SERVING while draining).
                "grpc_health_check": {},
            }
        ],
    }


def render(
    catalog: Catalog,
    *,
    descriptor_path: str,
    jwks_path: str,
    profile: str = "dev",
    streaming: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """The bootstrap as a dict. `streaming` (from the descriptor) gets streaming RPCs longer timeouts."""
    chosen = PROFILES[profile]
    streaming = streaming or {}
    health_spec = catalog.service(catalog.health_service)
    routes: list[dict[str, Any]] = [
        {
            "name": "gateway_health",
            "match": {"path": catalog.rest_health_path},
            "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}},
        },
        {
            "name": "grpc_health",
            "match": {"prefix": GRPC_HEALTH_PREFIX},
            "route": {"cluster": health_spec.cluster, "timeout": "5s"},
        },
    ]
    for spec in catalog.services:
        routes += _service_routes(spec, streaming)
    connection_manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
        ".HttpConnectionManager",
        "stat_prefix": "crm_gateway",
        "codec_type": "AUTO",
        "generate_request_id": True,
        # Normalize before jwt_authn's path rules see the path: no `/a/../b` bypasses.
        "normalize_path": True,
        "merge_slashes": True,
        "use_remote_address": True,
        "access_log": _access_log(),
        "route_config": {
            "name": "crm",
            "virtual_hosts": [{"name": "crm", "domains": ["*"], "routes": routes}],
        },
        "http_filters": [
            _client_method_filter(),
            _jwt_filter(catalog, jwks_path),
            _transcoder_filter(catalog, descriptor_path),
            *([_local_rate_limit_filter()] if any(spec.rate_limits for spec in catalog.services) else []),
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            },
        ],
    }
    return {
        "node": {"id": f"crm-gateway-{chosen.name}", "cluster": "crm-gateway"},
        "admin": {"address": _socket(chosen.admin_address, catalog.admin_port)},
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.resource_monitors"
                        ".downstream_connections.v3.DownstreamConnectionsConfig",
                        "max_active_downstream_connections": MAX_DOWNSTREAM_CONNECTIONS,
                    },
                }
            ]
        },
        "static_resources": {
            "listeners": [
                {
                    "name": "crm_gateway",
                    "address": _socket(chosen.listen_address, catalog.listen_port),
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": connection_manager,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [_cluster(spec, catalog, chosen) for spec in catalog.services],
        },
    }


def write_config(
    out: Path,
    *,
    descriptor: Path,
    jwks: Path | str,
    catalog: Catalog | None = None,
    profile: str = "dev",
    descriptor_out: Path | None = None,
    descriptor_path_in_config: str | None = None,
) -> Path:
    """Write the gateway descriptor (beside `out` unless told) and the bootstrap YAML; returns `out`.

    In the dev profile paths are made absolute; in k8s they are written as given (mount paths).
    """
    catalog = catalog or load_catalog()
    image = gateway_descriptor(Path(descriptor).read_bytes())
    served = streaming_methods(image)
    unknown = [name for spec in catalog.services for name in spec.grpc_services if name not in served]
    if unknown:
        raise ValueError(f"services.yaml names gRPC services absent from {descriptor}: {unknown}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    descriptor_out = descriptor_out or out.with_name(out.stem + ".binpb")
    descriptor_out.write_bytes(image.SerializeToString())
    if profile == "dev":
        descriptor_ref = descriptor_path_in_config or str(descriptor_out.resolve())
        jwks_ref = str(Path(jwks).resolve())
    else:
        descriptor_ref = descriptor_path_in_config or f"/etc/envoy/{descriptor_out.name}"
        jwks_ref = str(jwks)
    config = render(
        catalog, descriptor_path=descriptor_ref, jwks_path=jwks_ref, profile=profile, streaming=served
    )
    header = "# Generated by python -m crm_gateway.envoy_config from services.yaml; do not edit.\n"
    out.write_text(header + yaml.safe_dump(config, sort_keys=False))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m crm_gateway.envoy_config", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", required=True, type=Path, help="bootstrap YAML to write")
    parser.add_argument("--descriptor", required=True, type=Path, help="FileDescriptorSet from `make proto`")
    parser.add_argument("--jwks", required=True, help="JWKS file Envoy verifies tokens with")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="dev")
    parser.add_argument("--services", type=Path, default=None, help="service list (default: services.yaml)")
    parser.add_argument(
        "--descriptor-out",
        type=Path,
        default=None,
        help="where to write the gateway descriptor (default: beside --out)",
    )
    parser.add_argument(
        "--descriptor-path-in-config",
        default=None,
        help="path Envoy reads the descriptor from (k8s default /etc/envoy/<name>)",
    )
    args = parser.parse_args(argv)
    try:
        out = write_config(
            args.out,
            descriptor=args.descriptor,
            jwks=args.jwks,
            catalog=load_catalog(args.services),
            profile=args.profile,
            descriptor_out=args.descriptor_out,
            descriptor_path_in_config=args.descriptor_path_in_config,
        )
    except (OSError, ValueError) as exc:
        print(f"envoy_config: {exc}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
