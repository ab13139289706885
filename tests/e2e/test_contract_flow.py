"""From a won deal to a signed, paid contract through the real gateway and the real customer, sales
and contract processes on one NATS (`make run` on free ports).

A rep wins an opportunity in the sales service (gRPC) -> the contract service drafts exactly one
contract for them (crm.sales.opportunity.won) -> over REST/JSON the rep sets its dates, submits it
(no workflow matches: APPROVED) and signs it -> the customer service applies ContractSigned (the
customer's last deal time moves to the signature) -> finance sets a payment plan and records a
payment, and the contract's balance shows received + outstanding = amount.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from e2e_client import RestApi, customer_json

from crm.common.v1 import money_pb2
from crm.contract.v1 import contract_service_pb2 as contract_pb
from crm.contract.v1 import contract_service_pb2_grpc as contract_grpc
from crm.sales.v1 import opportunity_service_pb2 as opportunity_pb
from crm.sales.v1 import opportunity_service_pb2_grpc as opportunity_grpc

pytestmark = pytest.mark.asyncio(loop_scope="session")

WAIT_SECONDS = 30.0
AMOUNT = 12_000_000  # 120,000.00 CNY


async def eventually(check, seconds: float = WAIT_SECONDS):
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.2)


def rfc3339(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def date(year: int, month: int, day: int) -> dict:
    return {"year": year, "month": month, "day": day}


def cny(amount_minor: int) -> dict:
    return {"currency_code": "CNY", "amount_minor": str(amount_minor)}


async def win_opportunity(channel, metadata, customer: str) -> str:
    stub = opportunity_grpc.OpportunityServiceStub(channel)
    draft = opportunity_pb.Opportunity(
        customer=customer,
        title="E2E forklifts",
        amount=money_pb2.Money(currency_code="CNY", amount_minor=AMOUNT),
    )
    draft.expected_close_time.FromDatetime(datetime(2027, 3, 1, tzinfo=UTC))
    created = await stub.CreateOpportunity(
        opportunity_pb.CreateOpportunityRequest(opportunity=draft), metadata=metadata, timeout=15
    )
    await stub.WinOpportunity(
        opportunity_pb.WinOpportunityRequest(name=created.name), metadata=metadata, timeout=15
    )
    return created.name


async def test_a_won_deal_becomes_a_contract_that_is_signed_and_paid(e2e_stack, gateway_channel):
    team = f"t{uuid.uuid4().hex[:6]}"
    rep_token = e2e_stack.token("sales_rep", "bob", team)
    rep_md = (("authorization", f"Bearer {rep_token}"),)
    admin = RestApi(e2e_stack.gateway_port, e2e_stack.token("admin", "alice", team))
    rep = RestApi(e2e_stack.gateway_port, rep_token)
    finance = RestApi(e2e_stack.gateway_port, e2e_stack.token("finance", "fiona", ""))

    customer = await admin.create_customer(customer_json(f"{team} buyer", team=team))
    opportunity = await win_opportunity(gateway_channel, rep_md, customer["name"])

    # The contract service drafted it for the rep (gRPC through the gateway).
    contracts = contract_grpc.ContractServiceStub(gateway_channel)

    async def drafted():
        reply = await contracts.ListContracts(
            contract_pb.ListContractsRequest(filter=f'opportunity = "{opportunity}"'),
            metadata=rep_md,
            timeout=15,
        )
        return list(reply.contracts)

    found = await eventually(drafted)
    assert len(found) == 1, f"expected one draft contract for {opportunity}, got {found}"
    [draft] = found
    assert (draft.customer, draft.owner, draft.team) == (customer["name"], "bob", team)
    assert (draft.amount.currency_code, draft.amount.amount_minor) == ("CNY", AMOUNT)
    name = draft.name

    # REST/JSON through Envoy: dates, submit (no workflow: APPROVED at once), sign.
    dated = await rep.request(
        "PATCH",
        f"/v1/{name}",
        {"start_date": date(2027, 1, 1), "end_date": date(2027, 12, 31), "etag": draft.etag},
        update_mask="start_date,end_date",
    )
    assert dated["status"] == "CONTRACT_STATUS_DRAFT" and dated["end_date"] == date(2027, 12, 31), dated
    submitted = await rep.request("POST", f"/v1/{name}:submit", {})
    assert submitted["status"] == "CONTRACT_STATUS_APPROVED", submitted
    before_signing = datetime.now(UTC)
    signed = await rep.request("POST", f"/v1/{name}:sign", {})
    assert signed["status"] == "CONTRACT_STATUS_ACTIVE" and signed["signed_date"], signed

    # The customer service applied ContractSigned: the last deal is now the signature, not the win.
    async def deal_signed():
        current = await admin.get_customer(customer["name"])
        last = current.get("last_deal_time")
        return current if last and rfc3339(last) >= before_signing.replace(microsecond=0) else None

    current = await eventually(deal_signed)
    assert current, "the customer service did not apply ContractSigned"
    assert current["lifecycle_stage"] == "LIFECYCLE_STAGE_ACTIVE", current

    # Money (finance): two installments, one payment covering the first and part of the second.
    plan = await finance.request(
        "PUT",
        f"/v1/{name}/paymentPlan",
        {
            "installments": [
                {"due_date": date(2027, 1, 31), "amount": cny(AMOUNT // 2)},
                {"due_date": date(2027, 6, 30), "amount": cny(AMOUNT // 2)},
            ]
        },
    )
    assert [i["number"] for i in plan["installments"]] == [1, 2], plan
    payment = await finance.request(
        "POST",
        "/v1/payments",
        {
            "contract": name,
            "amount": cny(8_000_000),
            "received_date": date(2026, 1, 20),
            "method": "PAYMENT_METHOD_BANK_TRANSFER",
            "reference": "E2E-TX-1",
        },
    )
    assert payment["status"] == "PAYMENT_STATUS_CONFIRMED", payment
    # The rep sees the balance of their contract (never the payment itself).
    balance = (await rep.request("GET", f"/v1/{name}"))["balance"]
    assert balance["received"] == cny(8_000_000), balance
    assert balance["outstanding"] == cny(AMOUNT - 8_000_000), balance
