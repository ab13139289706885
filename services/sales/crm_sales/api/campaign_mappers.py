"""Protobuf <-> domain for campaigns, members and stats."""

from __future__ import annotations

from crm.common.v1 import money_pb2
from crm.sales.v1 import campaign_service_pb2 as pb
from crm_sales.api.catalog_mappers import from_timestamp, timestamp
from crm_sales.domain.campaigns import (
    Campaign,
    CampaignInput,
    CampaignStatus,
    Channel,
    Member,
    Response,
    Stats,
)
from crm_shared.aip.etag import etag_for

CHANNEL_TO_PB = {c: pb.CampaignChannel.Value(f"CAMPAIGN_CHANNEL_{c.name}") for c in Channel}
CHANNEL_FROM_PB = {v: k for k, v in CHANNEL_TO_PB.items()}
STATUS_TO_PB = {s: pb.CampaignStatus.Value(f"CAMPAIGN_STATUS_{s.name}") for s in CampaignStatus}
STATUS_FROM_PB = {v: k for k, v in STATUS_TO_PB.items()}
RESPONSE_TO_PB = {r: pb.CampaignResponse.Value(f"CAMPAIGN_RESPONSE_{r.name}") for r in Response}
RESPONSE_FROM_PB = {v: k for k, v in RESPONSE_TO_PB.items()}


def _money(currency: str, amount: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, amount_minor=amount)


def campaign_input(message: pb.Campaign) -> CampaignInput:
    has_budget = message.HasField("budget")
    return CampaignInput(
        display_name=message.display_name,
        channel=CHANNEL_FROM_PB.get(message.channel),
        start_time=from_timestamp(message.start_time) if message.HasField("start_time") else None,
        end_time=from_timestamp(message.end_time) if message.HasField("end_time") else None,
        budget_currency=message.budget.currency_code if has_budget else "",
        budget=message.budget.amount_minor if has_budget else None,
        status=STATUS_FROM_PB.get(message.status),
        description=message.description,
    )


def campaign_to_pb(c: Campaign) -> pb.Campaign:
    message = pb.Campaign(
        name=c.name,
        display_name=c.display_name,
        channel=CHANNEL_TO_PB[c.channel],
        budget=_money(c.budget_currency, c.budget),
        status=STATUS_TO_PB[c.status],
        description=c.description,
        owner=c.owner,
        create_time=timestamp(c.create_time),
        update_time=timestamp(c.update_time),
        etag=etag_for(c.id, c.row_version),
    )
    if c.start_time is not None:
        message.start_time.CopyFrom(timestamp(c.start_time))
    if c.end_time is not None:
        message.end_time.CopyFrom(timestamp(c.end_time))
    return message


def member_to_pb(m: Member) -> pb.CampaignMember:
    message = pb.CampaignMember(
        name=m.name,
        member=m.member,
        response=RESPONSE_TO_PB[m.response],
        notes=m.notes,
        create_time=timestamp(m.create_time),
        update_time=timestamp(m.update_time),
        etag=etag_for(m.id, m.row_version),
    )
    if m.response_time is not None:
        message.response_time.CopyFrom(timestamp(m.response_time))
    return message


def stats_to_pb(c: Campaign, s: Stats) -> pb.CampaignStats:
    currency = c.budget_currency
    message = pb.CampaignStats(
        campaign=c.name,
        members=s.members,
        responses=[pb.ResponseCount(response=RESPONSE_TO_PB[r], count=n) for r, n in s.responses.items()],
        leads_created=s.leads_created,
        revenue_influenced=_money(currency, s.revenue),
        won_opportunities=s.won_opportunities,
        cost=_money(currency, s.cost),
        revenue_other_currency_opportunities=s.other_currency_opportunities,
    )
    if s.cost_per_lead is not None:
        message.cost_per_lead.CopyFrom(_money(currency, s.cost_per_lead))
    if s.roi_bp is not None:
        message.roi_bp = s.roi_bp
    return message
