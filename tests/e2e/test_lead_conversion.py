"""Lead capture -> conversion through the real gateway and the real customer and sales processes
(`make run` on free ports): the customer is created once even when ConvertLead is retried."""

from __future__ import annotations

import asyncio
import http.client
import json
import uuid

import pytest

from crm.customer.v1 import customer_service_pb2
from crm.customer.v1 import customer_service_pb2_grpc as customer_grpc
from crm.sales.v1 import lead_service_pb2 as pb
from crm.sales.v1 import lead_service_pb2_grpc as lead_grpc

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _post(port: int, path: str, body: dict, token: str) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        connection.request(
            "POST",
            path,
            body=json.dumps(body),
            headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


async def test_captured_lead_converts_into_one_customer(e2e_stack, gateway_channel):
    capture = e2e_stack.token("lead_capture", "web-form", "")
    admin = e2e_stack.token("admin", "alice", "east")
    admin_md = (("authorization", f"Bearer {admin}"),)
    email = f"e2e-{uuid.uuid4().hex[:8]}@example.com"

    status, captured = await asyncio.to_thread(
        _post,
        e2e_stack.gateway_port,
        "/v1/leads:capture",
        {"display_name": "E2E Person", "company": "E2E Ltd", "email_address": email},
        capture,
    )
    assert status == 200, captured
    lead = captured["lead"]
    status, converted = await asyncio.to_thread(
        _post, e2e_stack.gateway_port, f"/v1/{lead}:convert", {}, admin
    )
    assert status == 200, converted
    assert (
        converted["lead"]["status"] == "LEAD_STATUS_CONVERTED" and not converted["linked_existing_customer"]
    )

    again = await lead_grpc.LeadServiceStub(gateway_channel).ConvertLead(
        pb.ConvertLeadRequest(name=lead), metadata=admin_md
    )
    assert (again.customer, again.contact) == (converted["customer"], converted["contact"])
    found = await customer_grpc.CustomerServiceStub(gateway_channel).ListCustomers(
        customer_service_pb2.ListCustomersRequest(filter=f'email = "{email}"'), metadata=admin_md
    )
    assert [c.name for c in found.customers] == [converted["customer"]]
