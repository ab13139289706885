"""The generated Envoy config, run for real in front of a gRPC upstream: auth, transcoding, errors."""

from __future__ import annotations

import time

import grpc
import pytest
from gateway_http import request
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from crm.customer.v1 import customer_pb2, customer_service_pb2, customer_service_pb2_grpc
from crm_gateway import envoy_runner
from crm_gateway.catalog import load_catalog
from crm_gateway.envoy_config import write_config


def _metadata(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def _bad_tokens(gateway) -> dict[str, str]:
    long_ago = time.time() - 3600
    return {
        "expired": gateway.token(now=long_ago, ttl_seconds=60),
        "wrong issuer": gateway.token(issuer="https://evil.example"),
        "wrong audience": gateway.token(audience="someone-else"),
        "garbage": "not.a.jwt",
    }


# --- config ----------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["dev", "k8s"])
def test_generated_config_passes_envoy_validate(profile, dev_keys, descriptor, tmp_path):
    out = tmp_path / "envoy.yaml"
    # Envoy validate opens the descriptor, so point the k8s config at the file just written.
    write_config(
        out,
        descriptor=descriptor,
        jwks=dev_keys.jwks_path,
        catalog=load_catalog(env={}),
        profile=profile,
        descriptor_path_in_config=str(tmp_path / "envoy.binpb"),
    )
    envoy_runner.validate(out)


def test_streaming_methods_get_their_own_longer_timeout_route():
    from crm_gateway.envoy_config import render

    catalog = load_catalog(env={})
    config = render(
        catalog,
        descriptor_path="/d",
        jwks_path="/j",
        streaming={"crm.customer.v1.CustomerService": ["ImportCustomers"]},
    )
    routes = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
        "route_config"
    ]["virtual_hosts"][0]["routes"]
    names = [r["name"] for r in routes]
    streaming = routes[names.index("crm.customer.v1.CustomerService/ImportCustomers")]
    unary = routes[names.index("crm.customer.v1.CustomerService")]
    assert names.index(streaming["name"]) < names.index(unary["name"])  # exact path wins over prefix
    assert streaming["route"]["timeout"] == "300s"
    assert unary["route"]["timeout"] == "10s"


def test_k8s_profile_targets_service_dns_names_and_listens_everywhere():
    from crm_gateway.envoy_config import render

    config = render(load_catalog(env={}), descriptor_path="/d", jwks_path="/j", profile="k8s")
    listener = config["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"]["address"] == "0.0.0.0"
    endpoint = config["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    assert endpoint["endpoint"]["address"]["socket_address"] == {"address": "customer", "port_value": 50051}


# --- authentication at the edge --------------------------------------------------------------


async def test_grpc_call_without_token_is_unauthenticated(gateway, channel, upstream):
    servicer, _ = upstream
    before = len(servicer.calls)
    stub = customer_service_pb2_grpc.CustomerServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.GetCustomer(customer_service_pb2.GetCustomerRequest(name="customers/x"))
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert len(servicer.calls) == before  # stopped at the edge


async def test_rest_call_without_token_is_401(gateway, upstream):
    servicer, _ = upstream
    before = len(servicer.calls)
    reply = await request(gateway.port, "GET", "/v1/customers")
    assert reply.status == 401
    assert len(servicer.calls) == before


# Envoy's jwt_authn answers a token for another audience with 403 (PERMISSION_DENIED), every other
# failure with 401 (UNAUTHENTICATED); it is not configurable.
@pytest.mark.parametrize(
    ("kind", "grpc_code", "http_status"),
    [
        ("expired", grpc.StatusCode.UNAUTHENTICATED, 401),
        ("wrong issuer", grpc.StatusCode.UNAUTHENTICATED, 401),
        ("wrong audience", grpc.StatusCode.PERMISSION_DENIED, 403),
        ("garbage", grpc.StatusCode.UNAUTHENTICATED, 401),
    ],
)
async def test_bad_tokens_are_rejected_on_grpc_and_rest(
    kind, grpc_code, http_status, gateway, channel, upstream
):
    servicer, _ = upstream
    before = len(servicer.calls)
    token = _bad_tokens(gateway)[kind]
    stub = customer_service_pb2_grpc.CustomerServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.ListCustomers(customer_service_pb2.ListCustomersRequest(), metadata=_metadata(token))
    assert error.value.code() == grpc_code
    reply = await request(gateway.port, "GET", "/v1/customers", token=token)
    assert reply.status == http_status
    assert len(servicer.calls) == before


async def test_valid_token_reaches_upstream_with_the_authorization_header(gateway, channel, upstream):
    servicer, _ = upstream
    token = gateway.token(subject="bob", roles=["sales_rep"])
    stub = customer_service_pb2_grpc.CustomerServiceStub(channel)
    created = await stub.CreateCustomer(
        customer_service_pb2.CreateCustomerRequest(customer=customer_pb2.Customer(display_name="Acme")),
        metadata=_metadata(token),
    )
    assert created.name.startswith("customers/")
    method, metadata = servicer.calls[-1]
    assert method == "CreateCustomer"
    assert metadata["authorization"] == f"Bearer {token}"
    assert metadata.get("x-request-id")  # the gateway tags every request for log correlation
    assert "x-jwt-payload" not in {k.lower() for k in metadata}  # payload is not forwarded in a header


# --- REST transcoding ------------------------------------------------------------------------


async def test_rest_create_then_get_transcode_to_the_right_rpcs(gateway, upstream):
    servicer, _ = upstream
    token = gateway.token()
    created = await request(
        gateway.port,
        "POST",
        "/v1/customers",
        body={"display_name": "Globex", "kind": "CUSTOMER_KIND_COMPANY", "tags": ["vip"]},
        token=token,
    )
    assert created.status == 200, created.body
    assert created.headers["content-type"].startswith("application/json")
    assert servicer.calls[-1][0] == "CreateCustomer"
    assert servicer.calls[-1][1]["authorization"] == f"Bearer {token}"
    body = created.json()
    assert body["display_name"] == "Globex"  # proto field names, not lowerCamel
    assert body["kind"] == "CUSTOMER_KIND_COMPANY"
    assert body["industry"] == ""  # primitive fields always printed
    assert body["tier"] == "CUSTOMER_TIER_UNSPECIFIED"
    assert "create_time" in body

    fetched = await request(gateway.port, "GET", f"/v1/{body['name']}", token=token)
    assert fetched.status == 200, fetched.body
    assert servicer.calls[-1][0] == "GetCustomer"
    assert fetched.json()["name"] == body["name"]
    assert fetched.json()["tags"] == ["vip"]


async def test_rest_list_with_query_parameters(gateway, upstream):
    servicer, _ = upstream
    token = gateway.token()
    reply = await request(
        gateway.port, "GET", "/v1/customers?page_size=10&order_by=display_name", token=token
    )
    assert reply.status == 200, reply.body
    assert servicer.calls[-1][0] == "ListCustomers"
    body = reply.json()
    assert isinstance(body["customers"], list)
    assert body["next_page_token"] == ""


async def test_rest_unknown_query_parameter_is_a_400_not_a_404(gateway):
    reply = await request(gateway.port, "GET", "/v1/customers?pagesize=10", token=gateway.token())
    assert reply.status == 400, reply.body


async def test_rest_not_found_maps_to_404_json_status(gateway):
    reply = await request(
        gateway.port, "GET", "/v1/customers/00000000-0000-0000-0000-000000000000", token=gateway.token()
    )
    assert reply.status == 404
    assert reply.json()["code"] == 5


async def test_rest_invalid_argument_comes_back_as_400_with_status_details(gateway):
    reply = await request(
        gateway.port, "POST", "/v1/customers", body={"industry": "retail"}, token=gateway.token()
    )
    assert reply.status == 400, reply.body
    assert reply.headers["content-type"].startswith("application/json")
    status = reply.json()
    assert status["code"] == 3
    assert status["message"] == "customer.display_name is required"
    by_type = {d["@type"]: d for d in status["details"]}
    bad_request = by_type["type.googleapis.com/google.rpc.BadRequest"]
    assert bad_request["field_violations"][0]["field"] == "customer.display_name"
    assert by_type["type.googleapis.com/google.rpc.ErrorInfo"]["reason"] == "DISPLAY_NAME_REQUIRED"


async def test_grpc_error_details_pass_through_untouched(gateway, channel):
    stub = customer_service_pb2_grpc.CustomerServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.CreateCustomer(
            customer_service_pb2.CreateCustomerRequest(customer=customer_pb2.Customer()),
            metadata=_metadata(gateway.token()),
        )
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(error.value)
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert bad_request.field_violations[0].field == "customer.display_name"


# --- health ----------------------------------------------------------------------------------


async def test_grpc_health_through_the_gateway_needs_no_token(gateway, channel):
    stub = health_pb2_grpc.HealthStub(channel)
    reply = await stub.Check(health_pb2.HealthCheckRequest(service="crm.customer.v1.CustomerService"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_gateway_healthz_needs_no_token(gateway):
    reply = await request(gateway.port, "GET", "/healthz")
    assert reply.status == 200
    assert reply.body == b"ok\n"


async def test_admin_serves_prometheus_stats_on_its_own_port(gateway):
    reply = await request(gateway.admin_port, "GET", "/stats/prometheus")
    assert reply.status == 200
    assert b"envoy_cluster_upstream_rq" in reply.body


async def test_access_log_is_json_with_what_the_client_sent_and_the_rpc_it_became(gateway):
    import asyncio
    import json

    await request(gateway.port, "GET", "/v1/customers?page_size=3", token=gateway.token())
    for _ in range(50):  # the access log is flushed every 200 ms
        lines = [json.loads(line) for line in gateway.log.read_text().splitlines() if line.startswith("{")]
        matching = [entry for entry in lines if entry["path"] == "/v1/customers?page_size=3"]
        if matching:
            break
        await asyncio.sleep(0.1)
    assert matching, lines[-5:]
    entry = matching[-1]
    assert entry["method"] == "GET"
    assert entry["path"] == "/v1/customers?page_size=3"
    assert entry["rpc"] == "/crm.customer.v1.CustomerService/ListCustomers"
    assert entry["response_code"] == 200
    assert entry["grpc_status"] == 0
    assert entry["request_id"]
    assert isinstance(entry["duration_ms"], int)


@pytest.mark.parametrize(
    "path", ["/grpc.health.v1.Health/../v1/customers", "/healthz/../v1/customers", "//v1/customers"]
)
async def test_path_tricks_do_not_skip_authentication(gateway, upstream, path):
    servicer, _ = upstream
    before = len(servicer.calls)
    reply = await request(gateway.port, "GET", path)
    assert reply.status == 401
    assert len(servicer.calls) == before
