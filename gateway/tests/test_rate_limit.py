"""The capture rate limit in the rendered Envoy config, and for real: a burst beyond the bucket
gets RESOURCE_EXHAUSTED on gRPC and 429 on REST, from Envoy itself, before any upstream."""

from __future__ import annotations

import dataclasses

import grpc
import pytest
from gateway_http import request

from crm.sales.v1 import lead_service_pb2, lead_service_pb2_grpc
from crm_gateway import envoy_runner
from crm_gateway.catalog import RateLimit, load_catalog
from crm_gateway.envoy_config import LOCAL_RATE_LIMIT, render, write_config

CAPTURE = "crm.sales.v1.LeadService/CaptureLead"


def _routes(config):
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm, hcm["route_config"]["virtual_hosts"][0]["routes"]


def test_services_yaml_rate_limits_capture_with_its_own_route_before_the_service_prefix():
    catalog = load_catalog(env={})
    (limit,) = catalog.service("sales").rate_limits
    assert limit.method == CAPTURE and limit.requests > 0
    hcm, routes = _routes(render(catalog, descriptor_path="/d", jwks_path="/j"))
    names = [r["name"] for r in routes]
    limited = routes[names.index(f"{CAPTURE} (rate limited)")]
    assert names.index(limited["name"]) < names.index("crm.sales.v1.LeadService")
    assert limited["match"] == {"path": f"/{CAPTURE}"}
    bucket = limited["typed_per_filter_config"][LOCAL_RATE_LIMIT]
    assert bucket["token_bucket"]["max_tokens"] == limit.requests
    assert bucket["rate_limited_as_resource_exhausted"] is True
    # The filter runs after the transcoder, so REST calls are limited as the RPC they become.
    filters = [f["name"] for f in hcm["http_filters"]]
    assert filters.index(LOCAL_RATE_LIMIT) == filters.index("envoy.filters.http.grpc_json_transcoder") + 1
    # Other routes carry no bucket.
    assert all("typed_per_filter_config" not in r for r in routes if r is not limited)


def test_bad_rate_limit_entries_are_rejected(tmp_path):
    bad = tmp_path / "services.yaml"
    bad.write_text(
        "services:\n  - name: sales\n    module: m\n    grpc_services: [a.B]\n    dev_port: 1\n"
        "    rate_limits:\n      - {method: NoSlash, requests: 0, per: 1s}\n"
    )
    with pytest.raises(ValueError, match="bad rate limit"):
        load_catalog(bad, env={})


async def test_capture_burst_beyond_the_bucket_is_resource_exhausted(dev_keys, descriptor, tmp_path):
    port, admin_port = envoy_runner.free_port(), envoy_runner.free_port()
    catalog = load_catalog(env={"CRM_GATEWAY_PORT": str(port), "CRM_GATEWAY_ADMIN_PORT": str(admin_port)})
    burst = 3
    catalog = dataclasses.replace(
        catalog,
        services=tuple(
            dataclasses.replace(s, rate_limits=(RateLimit(CAPTURE, burst, 60.0),)) if s.name == "sales" else s
            for s in catalog.services
        ),
    )
    config = write_config(
        tmp_path / "envoy.yaml", descriptor=descriptor, jwks=dev_keys.jwks_path, catalog=catalog
    )
    with (tmp_path / "envoy.log").open("wb") as log:
        process = envoy_runner.start(config, stdout=log)
    token = envoy_token(dev_keys, catalog)
    try:
        envoy_runner.wait_ready(admin_port, process)
        metadata = (("authorization", f"Bearer {token}"),)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = lead_service_pb2_grpc.LeadServiceStub(channel)
            codes = []
            for _ in range(burst + 1):
                try:
                    await stub.CaptureLead(
                        lead_service_pb2.CaptureLeadRequest(display_name="x"), metadata=metadata
                    )
                    codes.append(grpc.StatusCode.OK)
                except grpc.aio.AioRpcError as error:
                    codes.append(error.code())
        # No sales service runs here: the first `burst` reach the router (UNAVAILABLE), the next is
        # refused by the bucket before routing.
        assert codes[:burst] == [grpc.StatusCode.UNAVAILABLE] * burst
        assert codes[burst] == grpc.StatusCode.RESOURCE_EXHAUSTED
        reply = await request(port, "POST", "/v1/leads:capture", {"display_name": "x"}, token)
        assert reply.status == 429 and reply.headers.get("x-crm-rate-limited") == "true"
        # Another LeadService route is not limited (it fails only for want of an upstream).
        other = await request(port, "GET", f"/v1/leads/{'0' * 8}-0000-0000-0000-{'0' * 12}", None, token)
        assert other.status == 503
    finally:
        envoy_runner.stop(process)


def envoy_token(keys, catalog) -> str:
    from crm_shared.auth.dev_keys import mint_token

    return mint_token(
        keys,
        subject="web-form",
        roles=["lead_capture"],
        team="",
        issuer=catalog.jwt_issuer,
        audience=catalog.jwt_audience,
        ttl_seconds=300,
    )
