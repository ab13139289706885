"""From a lead to a paid contract, seen by the reporting service, through the real gateway and the
real customer, sales, contract and reporting processes on one NATS (`make run` on free ports).

A rep creates a lead and converts it with an opportunity (sales) -> wins it -> the contract
service drafts the contract -> the rep dates, submits and signs it -> finance sets a payment plan
and records a payment. Within a bounded wait the reporting service (fed only by the events) shows,
in the customer's 360 view, the won opportunity, the signed contract and the payment in the
timeline and the lifetime value, and the rep's own funnel counts the win.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from e2e_client import RestApi

from crm.common.v1 import money_pb2
from crm.contract.v1 import contract_service_pb2 as contract_pb
from crm.contract.v1 import contract_service_pb2_grpc as contract_grpc
from crm.customer.v1 import customer_pb2
from crm.customer.v1 import customer_service_pb2 as customer_pb
from crm.customer.v1 import customer_service_pb2_grpc as customer_grpc
from crm.reporting.v1 import customer_insight_service_pb2 as insight_pb
from crm.reporting.v1 import customer_insight_service_pb2_grpc as insight_grpc
from crm.reporting.v1 import sales_report_service_pb2 as sales_report_pb
from crm.reporting.v1 import sales_report_service_pb2_grpc as sales_report_grpc
from crm.sales.v1 import lead_service_pb2 as lead_pb
from crm.sales.v1 import lead_service_pb2_grpc as lead_grpc
from crm.sales.v1 import opportunity_service_pb2 as opportunity_pb
from crm.sales.v1 import opportunity_service_pb2_grpc as opportunity_grpc

pytestmark = pytest.mark.asyncio(loop_scope="session")

WAIT_SECONDS = 45.0
AMOUNT = 6_000_000  # 60,000.00 CNY
PAID = 2_500_000


async def eventually(check, seconds: float = WAIT_SECONDS):
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.25)


def date(year: int, month: int, day: int) -> dict:
    return {"year": year, "month": month, "day": day}


def cny(amount_minor: int) -> dict:
    return {"currency_code": "CNY", "amount_minor": str(amount_minor)}


async def test_lead_to_payment_shows_in_the_360_view_and_the_reps_funnel(e2e_stack, gateway_channel):
    team = f"t{uuid.uuid4().hex[:6]}"
    rep_subject = f"rep-{uuid.uuid4().hex[:6]}"
    rep_token = e2e_stack.token("sales_rep", rep_subject, team)
    rep_md = (("authorization", f"Bearer {rep_token}"),)
    admin_md = (("authorization", f"Bearer {e2e_stack.token('admin', 'alice', team)}"),)
    rep = RestApi(e2e_stack.gateway_port, rep_token)
    finance = RestApi(e2e_stack.gateway_port, e2e_stack.token("finance", "fiona", ""))

    # Lead -> conversion with an opportunity -> win (the rep's own, over gRPC through the gateway).
    leads = lead_grpc.LeadServiceStub(gateway_channel)
    lead = await leads.CreateLead(
        lead_pb.CreateLeadRequest(
            lead=lead_pb.Lead(
                display_name="Flow Buyer",
                company=f"{team} Flow Ltd",
                email_addresses=[f"flow-{uuid.uuid4().hex[:8]}@example.com"],
            )
        ),
        metadata=rep_md,
        timeout=15,
    )
    opportunity_draft = lead_pb.ConvertLeadOpportunity(
        title="E2E reporting flow", amount=money_pb2.Money(currency_code="CNY", amount_minor=AMOUNT)
    )
    opportunity_draft.expected_close_time.FromDatetime(datetime(2027, 3, 1, tzinfo=UTC))
    converted = await leads.ConvertLead(
        lead_pb.ConvertLeadRequest(name=lead.name, create_opportunity=True, opportunity=opportunity_draft),
        metadata=rep_md,
        timeout=15,
    )
    customer, opportunity = converted.customer, converted.opportunity
    assert customer and opportunity, converted
    await opportunity_grpc.OpportunityServiceStub(gateway_channel).WinOpportunity(
        opportunity_pb.WinOpportunityRequest(name=opportunity), metadata=rep_md, timeout=15
    )

    # The contract service drafts it; the rep dates, submits and signs it (REST through Envoy).
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
    contract = draft.name
    await rep.request(
        "PATCH",
        f"/v1/{contract}",
        {"start_date": date(2027, 1, 1), "end_date": date(2027, 12, 31), "etag": draft.etag},
        update_mask="start_date,end_date",
    )
    assert (await rep.request("POST", f"/v1/{contract}:submit", {}))["status"] == "CONTRACT_STATUS_APPROVED"
    assert (await rep.request("POST", f"/v1/{contract}:sign", {}))["status"] == "CONTRACT_STATUS_ACTIVE"

    # Finance: a plan and one payment.
    await finance.request(
        "PUT",
        f"/v1/{contract}/paymentPlan",
        {"installments": [{"due_date": date(2027, 2, 28), "amount": cny(AMOUNT)}]},
    )
    payment = await finance.request(
        "POST",
        "/v1/payments",
        {
            "contract": contract,
            "amount": cny(PAID),
            "received_date": date(2026, 11, 20),
            "method": "PAYMENT_METHOD_BANK_TRANSFER",
            "reference": "E2E-REPORTING-1",
        },
    )
    assert payment["status"] == "PAYMENT_STATUS_CONFIRMED", payment

    # Reporting, from the events alone: the 360 view within a bounded wait.
    insights = insight_grpc.CustomerInsightServiceStub(gateway_channel)

    async def view_shows_everything():
        view = await insights.GetCustomer360(
            insight_pb.GetCustomer360Request(customer=customer, timeline_limit=100),
            metadata=admin_md,
            timeout=15,
        )
        kinds = {entry.kind for entry in view.timeline}
        paid = {(m.currency_code, m.amount_minor) for m in view.lifetime_value}
        ready = (
            "opportunity_won" in kinds
            and "contract_signed" in kinds
            and any(kind.startswith("payment") for kind in kinds)
            and ("CNY", PAID) in paid
        )
        return view if ready else None

    view = await eventually(view_shows_everything)
    assert view, "the reporting 360 view did not show the won deal, the signed contract and the payment"
    assert view.won_opportunities == 1
    assert view.active_contracts == 1
    resources = {entry.resource for entry in view.timeline}
    assert opportunity in resources and contract in resources

    # The rep's own funnel counts the win (their scope: only their opportunities).
    funnels = sales_report_grpc.SalesReportServiceStub(gateway_channel)

    async def funnel_won():
        report = await funnels.GetFunnelReport(
            sales_report_pb.GetFunnelReportRequest(), metadata=rep_md, timeout=15
        )
        return report if report.won == 1 else None

    report = await eventually(funnel_won)
    assert report, "the rep's funnel does not show the win"
    assert report.win_rate_bp == 10000

    # The customer's score went back to the customer service (CustomerScored): tier and health.
    assert view.HasField("score") and 0 < view.score.health_score <= 100
    assert await eventually(lambda: customer_scored(gateway_channel, customer, admin_md)), (
        "the customer service did not apply the reporting score"
    )


async def customer_scored(channel, customer: str, metadata):
    current = await customer_grpc.CustomerServiceStub(channel).GetCustomer(
        customer_pb.GetCustomerRequest(name=customer), metadata=metadata, timeout=15
    )
    scored = current.health_score > 0 and current.tier != customer_pb2.CUSTOMER_TIER_UNSPECIFIED
    return current if scored else None
