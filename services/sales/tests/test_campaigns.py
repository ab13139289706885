"""CampaignService through a real gRPC channel, on SQLite and PostgreSQL, with real NATS.

Stats are checked against an independent computation over leads created through
the LeadService and opportunities won through the OpportunityService.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import grpc
import pytest
from google.protobuf import field_mask_pb2, timestamp_pb2

from crm.common.v1.money_pb2 import Money
from crm.sales.v1 import campaign_service_pb2 as pb
from crm.sales.v1 import campaign_service_pb2_grpc as pb_grpc
from crm.sales.v1 import common_pb2, events_pb2
from crm.sales.v1 import lead_service_pb2 as lpb
from crm.sales.v1 import lead_service_pb2_grpc as lpb_grpc
from crm.sales.v1 import opportunity_service_pb2 as opb
from crm.sales.v1 import opportunity_service_pb2_grpc as opb_grpc
from crm_shared.grpc.status import error_details
from crm_shared.testing.events import wait_for_envelopes
from crm_shared.testing.fixtures_nats import connect_nats

pytestmark = pytest.mark.asyncio(loop_scope="session")

STREAM = "CRM_SALES"


def cny(amount: int) -> Money:
    return Money(currency_code="CNY", amount_minor=amount)


def ts(moment: datetime) -> timestamp_pb2.Timestamp:
    value = timestamp_pb2.Timestamp()
    value.FromDatetime(moment)
    return value


def half_even(value: Fraction) -> int:
    floor = value.numerator // value.denominator
    rest = value - floor
    return floor + 1 if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2) else floor


async def expect_error(call, code: grpc.StatusCode):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    details = error_details(caught.value)
    assert details.code == code, f"{details.code} {details.message}"
    return details


@pytest.fixture
def campaigns(channel):
    return pb_grpc.CampaignServiceStub(channel)


async def new_campaign(campaigns, who, budget: int = 1_000_000, **fields) -> pb.Campaign:
    return await campaigns.CreateCampaign(
        pb.CreateCampaignRequest(
            campaign=pb.Campaign(
                display_name="Spring trade fair",
                channel=pb.CAMPAIGN_CHANNEL_EVENT,
                budget=cny(budget),
                start_time=ts(datetime(2026, 4, 1, tzinfo=UTC)),
                end_time=ts(datetime(2026, 4, 30, tzinfo=UTC)),
                **fields,
            ),
            request_id=str(uuid.uuid4()),
        ),
        metadata=who,
    )


async def test_stats_equal_an_independent_computation(campaigns, channel, as_user):
    marketing = as_user("marketing", "mia", team="mkt")
    admin = as_user("admin", "alice", team="east")
    rep = as_user("sales_rep", "bob", team="east")
    leads = lpb_grpc.LeadServiceStub(channel)
    deals = opb_grpc.OpportunityServiceStub(channel)
    budget = 1_000_003
    campaign = await new_campaign(campaigns, marketing, budget=budget)
    other = await new_campaign(campaigns, marketing, budget=5)

    # Leads: 7 with this campaign, 2 with another one.
    lead_names = []
    for n in range(9):
        lead = await leads.CreateLead(
            lpb.CreateLeadRequest(
                lead=lpb.Lead(
                    display_name=f"Lead {n}",
                    email_addresses=[f"p{n}-{uuid.uuid4().hex[:8]}@example.com"],
                    source_channel=common_pb2.LEAD_SOURCE_CHANNEL_TRADE_SHOW,
                    campaign=campaign.name if n < 7 else other.name,
                )
            ),
            metadata=marketing,
        )
        lead_names.append(lead.name)

    # Opportunities: won ones count, open/lost ones do not; a USD deal is reported apart.
    amounts = [(1_234_567, "won"), (2_000_001, "won"), (999, "open"), (50_000, "lost"), (777, "won")]
    expected_revenue = 0
    for amount, state in amounts:
        opportunity = await deals.CreateOpportunity(
            opb.CreateOpportunityRequest(
                opportunity=opb.Opportunity(
                    customer=f"customers/{uuid.uuid4()}",
                    title="Deal",
                    amount=cny(amount),
                    expected_close_time=ts(datetime(2027, 1, 1, tzinfo=UTC)),
                    campaign=campaign.name,
                )
            ),
            metadata=rep,
        )
        if state == "won":
            await deals.WinOpportunity(opb.WinOpportunityRequest(name=opportunity.name), metadata=rep)
            expected_revenue += amount
        elif state == "lost":
            await deals.LoseOpportunity(
                opb.LoseOpportunityRequest(name=opportunity.name, lost_reason="price"), metadata=rep
            )
    usd = await deals.CreateOpportunity(
        opb.CreateOpportunityRequest(
            opportunity=opb.Opportunity(
                customer=f"customers/{uuid.uuid4()}",
                title="USD deal",
                amount=Money(currency_code="USD", amount_minor=10_000),
                expected_close_time=ts(datetime(2027, 1, 1, tzinfo=UTC)),
                campaign=campaign.name,
            )
        ),
        metadata=rep,
    )
    await deals.WinOpportunity(opb.WinOpportunityRequest(name=usd.name), metadata=rep)

    # Members (batch add, with a duplicate) and responses.
    added = await campaigns.AddCampaignMembers(
        pb.AddCampaignMembersRequest(
            parent=campaign.name,
            members=[*lead_names[:5], lead_names[0], f"customers/{uuid.uuid4()}/contacts/{uuid.uuid4()}"],
        ),
        metadata=marketing,
    )
    assert len(added.added) == 6 and list(added.skipped) == [lead_names[0]]
    again = await campaigns.AddCampaignMembers(
        pb.AddCampaignMembersRequest(parent=campaign.name, members=lead_names[4:6]), metadata=marketing
    )
    assert [m.member for m in again.added] == [lead_names[5]] and list(again.skipped) == [lead_names[4]]
    responses = [
        pb.CAMPAIGN_RESPONSE_OPENED,
        pb.CAMPAIGN_RESPONSE_OPENED,
        pb.CAMPAIGN_RESPONSE_CLICKED,
        pb.CAMPAIGN_RESPONSE_CONVERTED,
    ]
    for member, response in zip(added.added, responses, strict=False):
        recorded = await campaigns.RecordCampaignResponse(
            pb.RecordCampaignResponseRequest(name=member.name, response=response), metadata=marketing
        )
        assert recorded.response == response and recorded.HasField("response_time")

    stats = await campaigns.GetCampaignStats(
        pb.GetCampaignStatsRequest(name=campaign.name), metadata=as_user("sales_manager", "mgr", team="east")
    )
    by_type = {r.response: r.count for r in stats.responses}
    assert stats.members == 7
    assert by_type == {
        pb.CAMPAIGN_RESPONSE_NONE: 3,
        pb.CAMPAIGN_RESPONSE_OPENED: 2,
        pb.CAMPAIGN_RESPONSE_CLICKED: 1,
        pb.CAMPAIGN_RESPONSE_RESPONDED: 0,
        pb.CAMPAIGN_RESPONSE_CONVERTED: 1,
    }
    assert stats.leads_created == 7
    assert stats.revenue_influenced == cny(expected_revenue) and stats.won_opportunities == 3
    assert stats.revenue_other_currency_opportunities == 1
    assert stats.cost == cny(budget)
    assert stats.cost_per_lead == cny(half_even(Fraction(budget, 7)))
    assert stats.roi_bp == half_even(Fraction((expected_revenue - budget) * 10_000, budget))

    # Nothing yet: no cost per lead; a zero budget has no ROI.
    empty = await campaigns.GetCampaignStats(
        pb.GetCampaignStatsRequest(name=(await new_campaign(campaigns, admin, budget=0)).name), metadata=admin
    )
    assert not empty.HasField("cost_per_lead") and not empty.HasField("roi_bp") and empty.members == 0


async def test_crud_members_response_event_and_scope(campaigns, as_user, nats_server):
    marketing = as_user("marketing", "mia", team="mkt")
    manager = as_user("sales_manager", "mgr", team="east")
    rep = as_user("sales_rep", "bob", team="east")
    campaign = await new_campaign(campaigns, marketing)
    assert campaign.status == pb.CAMPAIGN_STATUS_PLANNED and campaign.owner == "mia"
    updated = await campaigns.UpdateCampaign(
        pb.UpdateCampaignRequest(
            campaign=pb.Campaign(name=campaign.name, status=pb.CAMPAIGN_STATUS_ACTIVE, etag=campaign.etag),
            update_mask=field_mask_pb2.FieldMask(paths=["status"]),
        ),
        metadata=marketing,
    )
    assert updated.status == pb.CAMPAIGN_STATUS_ACTIVE
    await expect_error(
        campaigns.UpdateCampaign(
            pb.UpdateCampaignRequest(
                campaign=pb.Campaign(name=campaign.name, display_name="x", etag=campaign.etag),
                update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
            ),
            metadata=marketing,
        ),
        grpc.StatusCode.ABORTED,
    )
    listed = await campaigns.ListCampaigns(
        pb.ListCampaignsRequest(filter='status = CAMPAIGN_STATUS_ACTIVE AND owner = "mia"'), metadata=manager
    )
    assert campaign.name in [c.name for c in listed.campaigns]

    lead = f"leads/{uuid.uuid4()}"
    member = await campaigns.CreateCampaignMember(
        pb.CreateCampaignMemberRequest(parent=campaign.name, member=pb.CampaignMember(member=lead)),
        metadata=marketing,
    )
    assert member.response == pb.CAMPAIGN_RESPONSE_NONE
    await expect_error(
        campaigns.CreateCampaignMember(
            pb.CreateCampaignMemberRequest(parent=campaign.name, member=pb.CampaignMember(member=lead)),
            metadata=marketing,
        ),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    await campaigns.RecordCampaignResponse(
        pb.RecordCampaignResponseRequest(name=member.name, response=pb.CAMPAIGN_RESPONSE_RESPONDED),
        metadata=marketing,
    )
    nc = await connect_nats(nats_server.url)
    try:
        events = await wait_for_envelopes(nc.jetstream(), STREAM, resource=member.name, count=1)
    finally:
        await nc.close()
    assert [e.type for e in events] == ["crm.sales.v1.CampaignResponseRecorded"]
    payload = events_pb2.CampaignResponseRecorded()
    events[0].payload.Unpack(payload)
    assert (payload.campaign, payload.member, payload.response) == (campaign.name, lead, "responded")

    # Sales managers read; they (and reps) cannot change campaigns; reps cannot read them.
    assert (await campaigns.GetCampaign(pb.GetCampaignRequest(name=campaign.name), metadata=manager)).name
    members = await campaigns.ListCampaignMembers(
        pb.ListCampaignMembersRequest(parent=campaign.name), metadata=manager
    )
    assert [m.member for m in members.members] == [lead]
    for who in (manager, rep):
        await expect_error(
            campaigns.AddCampaignMembers(
                pb.AddCampaignMembersRequest(parent=campaign.name, members=[f"leads/{uuid.uuid4()}"]),
                metadata=who,
            ),
            grpc.StatusCode.PERMISSION_DENIED,
        )
    await expect_error(
        campaigns.GetCampaign(pb.GetCampaignRequest(name=campaign.name), metadata=rep),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    # Delete member, then campaign (members go with it).
    await campaigns.DeleteCampaignMember(pb.DeleteCampaignMemberRequest(name=member.name), metadata=marketing)
    await expect_error(
        campaigns.GetCampaignMember(pb.GetCampaignMemberRequest(name=member.name), metadata=marketing),
        grpc.StatusCode.NOT_FOUND,
    )
    await campaigns.DeleteCampaign(pb.DeleteCampaignRequest(name=campaign.name), metadata=marketing)
    await expect_error(
        campaigns.GetCampaign(pb.GetCampaignRequest(name=campaign.name), metadata=marketing),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_invalid_input_is_invalid_argument_with_field_paths(campaigns, as_user):
    marketing = as_user("marketing", "mia", team="mkt")
    shape = await expect_error(
        campaigns.CreateCampaign(
            pb.CreateCampaignRequest(
                campaign=pb.Campaign(display_name="x" * 201, budget=cny(-1), channel=99), request_id="nope"
            ),
            metadata=marketing,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert {"campaign.display_name", "campaign.budget", "campaign.channel", "request_id"} <= set(
        shape.field_violations
    )
    now = datetime.now(UTC)
    domain = await expect_error(
        campaigns.CreateCampaign(
            pb.CreateCampaignRequest(
                campaign=pb.Campaign(start_time=ts(now), end_time=ts(now - timedelta(days=1)))
            ),
            metadata=marketing,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert set(domain.field_violations) == {
        "campaign.display_name",
        "campaign.channel",
        "campaign.end_time",
        "campaign.budget",
    }
    campaign = await new_campaign(campaigns, marketing)
    members = await expect_error(
        campaigns.AddCampaignMembers(
            pb.AddCampaignMembersRequest(
                parent=campaign.name, members=[f"leads/{uuid.uuid4()}", "accounts/1"]
            ),
            metadata=marketing,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "members[1]" in members.field_violations
    currency = await expect_error(
        campaigns.UpdateCampaign(
            pb.UpdateCampaignRequest(
                campaign=pb.Campaign(name=campaign.name, budget=Money(currency_code="USD", amount_minor=1)),
                update_mask=field_mask_pb2.FieldMask(paths=["budget"]),
            ),
            metadata=marketing,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert set(currency.field_violations) == {"campaign.budget.currency_code"}
    added = await campaigns.AddCampaignMembers(
        pb.AddCampaignMembersRequest(parent=campaign.name, members=[f"leads/{uuid.uuid4()}"]),
        metadata=marketing,
    )
    future = await expect_error(
        campaigns.RecordCampaignResponse(
            pb.RecordCampaignResponseRequest(
                name=added.added[0].name,
                response=pb.CAMPAIGN_RESPONSE_OPENED,
                response_time=ts(now + timedelta(days=1)),
            ),
            metadata=marketing,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert set(future.field_violations) == {"response_time"}
    unset = await expect_error(
        campaigns.RecordCampaignResponse(
            pb.RecordCampaignResponseRequest(name=added.added[0].name), metadata=marketing
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "response" in unset.field_violations
    await expect_error(
        campaigns.ListCampaigns(pb.ListCampaignsRequest(filter="status = RUNNING"), metadata=marketing),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_campaign_created_and_updated_are_published_with_budget(campaigns, as_user, nats_server):
    marketing = as_user("marketing", "mia", team="mkt")
    campaign = await new_campaign(campaigns, marketing, budget=250_000)
    await campaigns.UpdateCampaign(
        pb.UpdateCampaignRequest(
            campaign=pb.Campaign(name=campaign.name, budget=cny(300_000), etag=campaign.etag),
            update_mask=field_mask_pb2.FieldMask(paths=["budget"]),
        ),
        metadata=marketing,
    )
    nc = await connect_nats(nats_server.url)
    try:
        events = await wait_for_envelopes(nc.jetstream(), STREAM, resource=campaign.name, count=2)
    finally:
        await nc.close()
    assert [e.type for e in events] == ["crm.sales.v1.CampaignCreated", "crm.sales.v1.CampaignUpdated"]
    created, updated = events_pb2.CampaignCreated(), events_pb2.CampaignUpdated()
    events[0].payload.Unpack(created)
    events[1].payload.Unpack(updated)
    assert created.campaign.name == campaign.name
    assert created.campaign.display_name == "Spring trade fair"
    assert created.campaign.channel == "EVENT" and created.campaign.status == "PLANNED"
    assert (created.campaign.budget.currency_code, created.campaign.budget.amount_minor) == ("CNY", 250_000)
    assert created.campaign.start_time.ToDatetime(tzinfo=UTC) == datetime(2026, 4, 1, tzinfo=UTC)
    assert updated.campaign.budget.amount_minor == 300_000 and list(updated.changed_fields) == ["budget"]
