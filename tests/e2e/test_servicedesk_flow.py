"""A support ticket from intake to a CSAT answer through the real gateway and the real customer and
servicedesk processes on one NATS (`make run` on free ports).

An admin creates a tier-A customer in the customer service -> a support manager sets up a
round-robin team of two and logs a phone ticket for the customer over REST/JSON: the servicedesk
takes the customer's snapshot (name, tier) from the customer service -> the customer's own app
(customer_portal) opens a second ticket, which the team's next turn gives to the other agent ->
the assignee answers publicly (first response) and writes an internal note,
then resolves -> the portal sees its ticket without the internal note and answers the CSAT survey
with a 5 -> an agent of another team is told the ticket does not exist, over REST and gRPC.
"""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from e2e_client import RestApi, customer_json, expect_error

from crm.servicedesk.v1 import ticket_service_pb2 as ticket_pb
from crm.servicedesk.v1 import ticket_service_pb2_grpc as ticket_grpc

pytestmark = pytest.mark.asyncio(loop_scope="session")

WAIT_SECONDS = 30.0


async def eventually(check, seconds: float = WAIT_SECONDS):
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.2)


async def test_a_ticket_from_intake_to_csat_across_services(e2e_stack, gateway_channel):
    team = f"sd{uuid.uuid4().hex[:6]}"
    agents = ("sam", "sue")
    admin = RestApi(e2e_stack.gateway_port, e2e_stack.token("admin", "alice", team))
    manager = RestApi(e2e_stack.gateway_port, e2e_stack.token("support_manager", "mia", team))
    portal = RestApi(e2e_stack.gateway_port, e2e_stack.token("customer_portal", f"portal-{team}", ""))

    customer = await admin.create_customer(
        customer_json(f"{team} Forklifts Ltd", team=team, tier="CUSTOMER_TIER_A")
    )
    created_team = await manager.request(
        "POST",
        "/v1/supportTeams",
        {
            "display_name": f"Support {team}",
            "strategy": "ASSIGNMENT_STRATEGY_ROUND_ROBIN",
            "members": [{"agent": agent, "available": True} for agent in agents],
        },
        support_team_id=team,
    )
    assert created_team["name"] == f"supportTeams/{team}", created_team

    # A phone call logged by the manager over REST/JSON: the servicedesk takes the customer's
    # snapshot from the customer service (at creation, or soon after by its retry timer).
    call = await manager.request(
        "POST",
        "/v1/tickets",
        {
            "subject": "Invoice address is wrong",
            "channel": "TICKET_CHANNEL_PHONE",
            "customer": customer["name"],
            "team": team,
        },
    )

    async def snapshot_fetched():
        current = await manager.request("GET", f"/v1/{call['name']}")
        snapshot = current.get("customer_snapshot", {})
        return snapshot if snapshot.get("state") == "CUSTOMER_SNAPSHOT_STATE_FETCHED" else None

    snapshot = await eventually(snapshot_fetched)
    assert snapshot, "the customer snapshot was never fetched from the customer service"
    assert (snapshot["display_name"], snapshot["tier"]) == (f"{team} Forklifts Ltd", "A"), snapshot

    # The customer's own app opens a ticket (it may not read customers itself: its snapshot is
    # taken later under the servicedesk's identity). The team's next turn assigns it: OPEN.
    ticket = await portal.request(
        "POST",
        "/v1/tickets",
        {
            "subject": "Forklift battery does not charge",
            "description": "Since Monday the charger shows error E4.",
            "type": "TICKET_TYPE_INCIDENT",
            "channel": "TICKET_CHANNEL_WEB",
            "customer": customer["name"],
            "team": team,
        },
    )
    name = ticket["name"]
    assert ticket["number"].startswith("T-") and ticket["requester"] == f"portal-{team}", ticket
    assert ticket["status"] == "TICKET_STATUS_OPEN", ticket
    assert not ticket.get("assignee") and not ticket.get("team"), ticket  # the support side's data
    assignee = (await manager.request("GET", f"/v1/{name}"))["assignee"]
    assert {call["assignee"], assignee} == set(agents), (call, assignee)  # round-robin: one each

    # The assignee answers publicly (the first response) and leaves an internal note.
    agent = RestApi(e2e_stack.gateway_port, e2e_stack.token("support_agent", assignee, team))
    await agent.request("POST", f"/v1/{name}/comments", {"body": "Please reset the charger (hold 10 s)."})
    await agent.request(
        "POST", f"/v1/{name}/comments", {"body": "Known firmware bug, ticket FW-12", "internal": True}
    )
    answered = await agent.request("GET", f"/v1/{name}")
    assert answered.get("first_response_time"), answered
    resolved = await agent.request("POST", f"/v1/{name}:resolve", {"resolution": "Charger reset"})
    assert resolved["status"] == "TICKET_STATUS_RESOLVED" and resolved.get("resolve_time"), resolved

    # The customer's side: its ticket, the public reply only, and the survey.
    seen = await portal.request("GET", f"/v1/{name}")
    assert seen["status"] == "TICKET_STATUS_RESOLVED", seen
    comments = (await portal.request("GET", f"/v1/{name}/comments")).get("comments", [])
    assert [c["body"] for c in comments] == ["Please reset the charger (hold 10 s)."], comments
    survey = await portal.request("GET", f"/v1/{name}/csatSurvey")
    assert survey["state"] == "CSAT_SURVEY_STATE_OPEN", survey
    assert survey["first_contact_resolution"] is True and not survey.get("assignee"), survey
    submitted = await portal.request(
        "POST", f"/v1/{name}/csatSurvey:submit", {"score": 5, "comment": "Fixed in minutes"}
    )
    assert submitted["state"] == "CSAT_SURVEY_STATE_ANSWERED" and submitted["score"] == 5, submitted
    again = await expect_error(
        portal.request("POST", f"/v1/{name}/csatSurvey:submit", {"score": 1}),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert again.reason == "CSAT_ALREADY_ANSWERED", again

    # The team's manager sees the answer in the CSAT list.
    listed = await manager.request("GET", "/v1/csatSurveys", filter=f'team = "{team}"')
    assert [(s["ticket"], s["score"]) for s in listed["csat_surveys"]] == [(name, 5)], listed

    # Another team's agent: the ticket does not exist for them, over REST and over gRPC.
    outsider_token = e2e_stack.token("support_agent", "otto", f"{team}-other")
    outsider = RestApi(e2e_stack.gateway_port, outsider_token)
    await expect_error(outsider.request("GET", f"/v1/{name}"), grpc.StatusCode.NOT_FOUND)
    await expect_error(outsider.request("GET", f"/v1/{name}/csatSurvey"), grpc.StatusCode.NOT_FOUND)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ticket_grpc.TicketServiceStub(gateway_channel).GetTicket(
            ticket_pb.GetTicketRequest(name=name),
            metadata=(("authorization", f"Bearer {outsider_token}"),),
            timeout=15,
        )
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
