"""Loads services.yaml: the gateway's listen ports, the JWT issuer and the services behind it."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

DEFAULT_CATALOG = Path(__file__).with_name("services.yaml")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)$")
_NAME = re.compile(r"^[a-z][a-z0-9]*$")


def parse_duration(text: str | int | float) -> float:
    """'10s', '250ms', '5m' or a number of seconds → seconds."""
    if isinstance(text, int | float):
        return float(text)
    match = _DURATION.match(str(text).strip())
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 10s, 250ms, 5m)")
    value, unit = float(match.group(1)), match.group(2)
    return value * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]


@dataclass(frozen=True)
class RateLimit:
    """A gateway token bucket for one RPC (and its REST mapping): `requests` per `per` seconds,
    bursts up to `requests`; beyond it Envoy answers 429 / RESOURCE_EXHAUSTED itself."""

    method: str  # "package.Service/Method"
    requests: int
    per: float


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    grpc_services: tuple[str, ...]
    dev_port: int
    metrics_port: int
    timeout: float
    streaming_timeout: float
    k8s_port: int
    rate_limits: tuple[RateLimit, ...] = ()

    @property
    def env_prefix(self) -> str:
        return f"CRM_{self.name.upper()}_"

    @property
    def cluster(self) -> str:
        return f"svc_{self.name}"


@dataclass(frozen=True)
class Catalog:
    listen_port: int
    admin_port: int
    rest_health_path: str
    health_service: str
    jwt_issuer: str
    jwt_audience: str
    connect_timeout: float
    services: tuple[ServiceSpec, ...]

    def service(self, name: str) -> ServiceSpec:
        for spec in self.services:
            if spec.name == name:
                return spec
        raise KeyError(name)


def _rate_limit(service: str, item: Mapping) -> RateLimit:
    limit = RateLimit(str(item["method"]).lstrip("/"), int(item["requests"]), parse_duration(item["per"]))
    if "/" not in limit.method or limit.requests < 1 or limit.per <= 0:
        raise ValueError(
            f"service {service}: bad rate limit {dict(item)!r} (method Service/Method, requests >= 1)"
        )
    return limit


def load_catalog(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Catalog:
    """Read the catalog. Env overrides for local runs:
    CRM_GATEWAY_PORT, CRM_GATEWAY_ADMIN_PORT, CRM_GATEWAY_JWT_ISSUER, CRM_GATEWAY_JWT_AUDIENCE,
    CRM_DEVSTACK_<NAME>_MODULE (run a stand-in instead of the real service),
    CRM_DEVSTACK_<NAME>_PORT and CRM_DEVSTACK_<NAME>_METRICS_PORT."""
    env = os.environ if env is None else env
    raw = yaml.safe_load(Path(path or env.get("CRM_SERVICES_FILE") or DEFAULT_CATALOG).read_text())
    gateway = raw.get("gateway", {})
    jwt = raw.get("jwt", {})
    defaults = raw.get("defaults", {})
    services = []
    seen_ports: set[int] = set()
    for entry in raw.get("services") or []:
        name = entry["name"]
        if not _NAME.match(name):
            raise ValueError(f"service name {name!r} must be lower-case letters and digits")
        upper = name.upper()
        spec = ServiceSpec(
            name=name,
            module=env.get(f"CRM_DEVSTACK_{upper}_MODULE", entry["module"]),
            grpc_services=tuple(entry["grpc_services"]),
            dev_port=int(env.get(f"CRM_DEVSTACK_{upper}_PORT", entry["dev_port"])),
            metrics_port=int(env.get(f"CRM_DEVSTACK_{upper}_METRICS_PORT", entry.get("metrics_port", 0))),
            timeout=parse_duration(entry.get("timeout", defaults.get("timeout", "10s"))),
            streaming_timeout=parse_duration(
                entry.get("streaming_timeout", defaults.get("streaming_timeout", "300s"))
            ),
            k8s_port=int(entry.get("k8s_port", defaults.get("k8s_port", 50051))),
            rate_limits=tuple(_rate_limit(name, item) for item in entry.get("rate_limits") or ()),
        )
        if not spec.grpc_services:
            raise ValueError(f"service {name} lists no grpc_services")
        if spec.dev_port in seen_ports:
            raise ValueError(f"service {name}: dev_port {spec.dev_port} is already taken")
        seen_ports.add(spec.dev_port)
        services.append(spec)
    if not services:
        raise ValueError("services.yaml lists no services")
    catalog = Catalog(
        listen_port=int(env.get("CRM_GATEWAY_PORT", gateway.get("listen_port", 8080))),
        admin_port=int(env.get("CRM_GATEWAY_ADMIN_PORT", gateway.get("admin_port", 9901))),
        rest_health_path=gateway.get("rest_health_path", "/healthz"),
        health_service=gateway.get("health_service", services[0].name),
        jwt_issuer=env.get("CRM_GATEWAY_JWT_ISSUER", jwt.get("issuer", "https://auth.crm.local")),
        jwt_audience=env.get("CRM_GATEWAY_JWT_AUDIENCE", jwt.get("audience", "crm")),
        connect_timeout=parse_duration(defaults.get("connect_timeout", "2s")),
        services=tuple(services),
    )
    catalog.service(catalog.health_service)  # must name a listed service
    return catalog
