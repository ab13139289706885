"""Through a real Envoy gateway (config rendered from services.yaml) in front of the in-process
sales service and the REAL customer service: web-form capture over REST -> conversion over REST
and gRPC (customer created once, a duplicate customer linked), and the capture rate limit."""

from __future__ import annotations

import uuid

import grpc
import pytest
import pytest_asyncio
from lead_stack import CustomerStack, customer_settings, rest, sales_settings, start_gateway

from crm.customer.v1 import customer_service_pb2
from crm.customer.v1 import customer_service_pb2_grpc as customer_grpc
from crm.sales.v1 import lead_service_pb2 as pb
from crm.sales.v1 import lead_service_pb2_grpc as rpc_grpc
from crm_gateway.catalog import RateLimit
from crm_sales.bootstrap import build as build_sales
from crm_shared.grpc.status import error_details
from crm_shared.runtime import start_service
from crm_shared.testing.fixtures_db import temporary_database_url

pytestmark = pytest.mark.asyncio(loop_scope="session")

CAPTURE_BURST = 5


@pytest_asyncio.fixture(loop_scope="session")
async def stack(database_url, nats_server, jwt_keys, tmp_path):
    kind = "postgres" if database_url.startswith("postgresql") else "sqlite"
    (tmp_path / "customer").mkdir()
    async with temporary_database_url(kind, tmp_path / "customer") as customer_url:
        customers = CustomerStack(customer_settings(customer_url, nats_server.url, jwt_keys))
        await customers.start()
        sales = await start_service(
            sales_settings(database_url, nats_server.url, jwt_keys, customer_target=customers.target),
            build_sales,
        )
        gateway = start_gateway(
            tmp_path,
            jwt_keys,
            customer_port=customers.running.port,
            sales_port=sales.port,
            capture_limit=RateLimit("crm.sales.v1.LeadService/CaptureLead", CAPTURE_BURST, 60.0),
        )
        try:
            yield gateway
        finally:
            gateway.stop()
            await sales.stop(1)
            await customers.stop()


async def test_capture_then_convert_through_the_gateway(stack, token_factory):
    capture = token_factory(subject="web-form", roles=("lead_capture",), team="")
    rep = token_factory(subject="bob", roles=("sales_rep",), team="east")
    manager = token_factory(subject="mia", roles=("sales_manager",), team="east")
    email = f"gw-{uuid.uuid4().hex[:8]}@example.com"

    # The east manager routes web-form leads to bob (round-robin rule with one member).
    status, _, rule = await rest(
        stack.port,
        "POST",
        "/v1/leadAssignmentRules",
        {"team": "east", "members": ["bob"], "source_channels": ["LEAD_SOURCE_CHANNEL_WEB_FORM"]},
        manager,
    )
    assert status == 200 and rule["next_member"] == "bob", rule
    # Web form over REST with the capture credential.
    status, _, body = await rest(
        stack.port,
        "POST",
        "/v1/leads:capture",
        {
            "display_name": "Li Lei",
            "company": "Hanmeimei Ltd",
            "email_address": email,
            "campaign": "campaigns/expo",
        },
        capture,
    )
    assert status == 200, body
    lead_name = body["lead"]
    # The capture credential may do nothing else.
    status, _, body = await rest(stack.port, "GET", f"/v1/{lead_name}", token=capture)
    assert status == 403, body

    # The rule assigned it to bob in east; the manager sees it and may re-assign (REST).
    status, _, body = await rest(stack.port, "POST", f"/v1/{lead_name}:assign", {"owner": "bob"}, manager)
    assert status == 200 and (body["status"], body["owner"], body["team"]) == (
        "LEAD_STATUS_ASSIGNED",
        "bob",
        "east",
    )
    # The rep works it (gRPC) and converts it over REST.
    async with grpc.aio.insecure_channel(stack.address) as channel:
        leads = rpc_grpc.LeadServiceStub(channel)
        customers = customer_grpc.CustomerServiceStub(channel)
        rep_md = (("authorization", f"Bearer {rep}"),)
        await leads.StartWorkingLead(pb.StartWorkingLeadRequest(name=lead_name), metadata=rep_md)
        status, _, converted = await rest(stack.port, "POST", f"/v1/{lead_name}:convert", {}, rep)
        assert status == 200, converted
        assert converted["lead"]["status"] == "LEAD_STATUS_CONVERTED"
        assert converted["linked_existing_customer"] is False
        # Retried over gRPC: the same customer, still exactly one with that email.
        again = await leads.ConvertLead(pb.ConvertLeadRequest(name=lead_name), metadata=rep_md)
        assert again.customer == converted["customer"] and again.contact == converted["contact"]
        found = await customers.ListCustomers(
            customer_service_pb2.ListCustomersRequest(filter=f'email = "{email}"'), metadata=rep_md
        )
        assert [c.name for c in found.customers] == [converted["customer"]]
        assert found.customers[0].owner == "bob" and found.customers[0].source == "lead:web_form:expo"

        # The same person comes in again later: a new lead (the first is closed), linked on conversion.
        status, _, second = await rest(
            stack.port,
            "POST",
            "/v1/leads:capture",
            {"display_name": "Li Lei", "email_address": email},
            capture,
        )
        assert status == 200 and second["duplicate"] is False
        linked = await leads.ConvertLead(pb.ConvertLeadRequest(name=second["lead"]), metadata=rep_md)
        assert linked.linked_existing_customer and linked.customer == converted["customer"]
        found = await customers.ListCustomers(
            customer_service_pb2.ListCustomersRequest(filter=f'email = "{email}"'), metadata=rep_md
        )
        assert len(found.customers) == 1

        # Bad input through the gateway: INVALID_ARGUMENT with field paths on both wire formats.
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await leads.CreateLead(
                pb.CreateLeadRequest(lead=pb.Lead(display_name="x", email_addresses=["nope"])),
                metadata=rep_md,
            )
        assert error_details(bad.value).field_violations.keys() == {"lead.email_addresses[0]"}
    status, _, body = await rest(stack.port, "POST", "/v1/leads", {"display_name": ""}, rep)
    assert status == 400
    violations = [d for d in body["details"] if d["@type"].endswith("google.rpc.BadRequest")]
    assert [v["field"] for v in violations[0]["field_violations"]] == ["lead.display_name"], body


async def test_capture_burst_beyond_the_limit_is_rate_limited(stack, token_factory):
    capture = token_factory(subject="web-form", roles=("lead_capture",), team="")
    admin = token_factory(subject="alice", roles=("admin",), team="east")
    md = (("authorization", f"Bearer {capture}"),)
    async with grpc.aio.insecure_channel(stack.address) as channel:
        leads = rpc_grpc.LeadServiceStub(channel)
        for n in range(CAPTURE_BURST):
            await leads.CaptureLead(
                pb.CaptureLeadRequest(display_name=f"Burst {n}", phone_number=f"1390013{n:04d}"), metadata=md
            )
        with pytest.raises(grpc.aio.AioRpcError) as limited:
            await leads.CaptureLead(
                pb.CaptureLeadRequest(display_name="One too many", phone_number="13900139999"), metadata=md
            )
        assert limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # Other LeadService methods are not limited.
        listed = await leads.ListLeads(
            pb.ListLeadsRequest(), metadata=(("authorization", f"Bearer {admin}"),)
        )
        assert len(listed.leads) >= CAPTURE_BURST
    # REST shares the bucket (it is limited as the RPC it becomes): 429.
    status, headers, _ = await rest(
        stack.port,
        "POST",
        "/v1/leads:capture",
        {"display_name": "REST", "phone_number": "13900138888"},
        capture,
    )
    assert status == 429 and headers.get("x-crm-rate-limited") == "true"
