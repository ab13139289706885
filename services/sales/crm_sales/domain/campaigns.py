"""Campaigns and members: entities, input rules, and the stats arithmetic (pure functions).

Stats arithmetic (integers only, in the budget's minor unit):
  cost_per_lead = round_half_even(budget / leads_created)          (none when no leads)
  roi_bp        = round_half_even((revenue - budget) * 10000 / budget) (none when budget is 0)
where revenue = sum of amounts of WON opportunities of the campaign in the budget's currency.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from crm_sales.domain.pricing import BASIS_POINTS, round_half_even
from crm_shared.errors import InvalidArgument, Violations


class Channel(enum.StrEnum):
    EMAIL = "email"
    ADS = "ads"
    SOCIAL = "social"
    EVENT = "event"
    WEBINAR = "webinar"
    TELEMARKETING = "telemarketing"
    OTHER = "other"


class CampaignStatus(enum.StrEnum):
    PLANNED = "planned"
    ACTIVE = "active"
    COMPLETED = "completed"


class Response(enum.StrEnum):
    NONE = "none"
    OPENED = "opened"
    CLICKED = "clicked"
    RESPONDED = "responded"
    CONVERTED = "converted"


@dataclass
class Campaign:
    id: str
    display_name: str
    channel: Channel
    budget_currency: str
    budget: int
    owner: str
    create_time: datetime
    update_time: datetime
    start_time: datetime | None = None
    end_time: datetime | None = None
    status: CampaignStatus = CampaignStatus.PLANNED
    description: str = ""
    row_version: int = 1

    @property
    def name(self) -> str:
        return f"campaigns/{self.id}"


@dataclass
class Member:
    id: str
    campaign_id: str
    member: str
    create_time: datetime
    update_time: datetime
    response: Response = Response.NONE
    response_time: datetime | None = None
    notes: str = ""
    row_version: int = 1

    @property
    def name(self) -> str:
        return f"campaigns/{self.campaign_id}/members/{self.id}"


@dataclass(frozen=True)
class CampaignInput:
    display_name: str = ""
    channel: Channel | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    budget_currency: str = ""
    budget: int | None = None
    status: CampaignStatus | None = None
    description: str = ""


CAMPAIGN_WRITABLE_FIELDS = frozenset(
    {"display_name", "channel", "start_time", "end_time", "budget", "status", "description"}
)
CAMPAIGN_OUTPUT_ONLY_FIELDS = frozenset({"name", "owner", "create_time", "update_time", "etag"})
MEMBER_WRITABLE_FIELDS = frozenset({"notes"})
MEMBER_OUTPUT_ONLY_FIELDS = frozenset(
    {"name", "member", "response", "response_time", "create_time", "update_time", "etag"}
)


def _check(c: Campaign | CampaignInput, violations: Violations) -> None:
    if not c.display_name.strip():
        violations.add("campaign.display_name", "is required")
    if c.channel is None:
        violations.add("campaign.channel", "is required")
    if c.start_time and c.end_time and c.end_time <= c.start_time:
        violations.add("campaign.end_time", "must be after start_time")


def new_campaign(data: CampaignInput, *, campaign_id: str, owner: str, now: datetime) -> Campaign:
    violations = Violations()
    _check(data, violations)
    if data.budget is None:
        violations.add("campaign.budget", "is required (use 0 for a free campaign)")
    elif len(data.budget_currency) != 3 or not data.budget_currency.isupper():
        violations.add("campaign.budget.currency_code", "must be an ISO-4217 code such as CNY")
    violations.raise_if_any("the campaign has invalid fields")
    assert data.channel is not None and data.budget is not None
    return Campaign(
        id=campaign_id,
        display_name=data.display_name.strip(),
        channel=data.channel,
        start_time=data.start_time,
        end_time=data.end_time,
        budget_currency=data.budget_currency,
        budget=data.budget,
        status=data.status or CampaignStatus.PLANNED,
        description=data.description,
        owner=owner,
        create_time=now,
        update_time=now,
    )


def update_campaign(
    current: Campaign, data: CampaignInput, fields: frozenset[str], *, now: datetime
) -> tuple[Campaign, list[str]]:
    changes: dict[str, object] = {}
    violations = Violations()
    if "display_name" in fields:
        changes["display_name"] = data.display_name.strip()
    if "channel" in fields:
        changes["channel"] = data.channel
    if "start_time" in fields:
        changes["start_time"] = data.start_time
    if "end_time" in fields:
        changes["end_time"] = data.end_time
    if "status" in fields:
        changes["status"] = data.status or CampaignStatus.PLANNED
    if "description" in fields:
        changes["description"] = data.description
    if "budget" in fields:
        if data.budget is None:
            violations.add("campaign.budget", "is required (use 0 for a free campaign)")
        elif data.budget_currency != current.budget_currency:
            # Stats are in the budget's currency; switching it would silently change their meaning.
            violations.add("campaign.budget.currency_code", f"must stay {current.budget_currency}")
        changes["budget"] = data.budget
    candidate = replace(current, **changes)
    _check(candidate, violations)
    violations.raise_if_any("the campaign has invalid fields")
    changed = [name for name, value in changes.items() if getattr(current, name) != value]
    if not changed:
        return current, []
    return replace(candidate, update_time=now, row_version=current.row_version + 1), changed


def record_response(member: Member, response: Response, *, at: datetime, now: datetime) -> Member:
    if at > now:
        raise InvalidArgument.for_field("response_time", "must not be in the future")
    return replace(
        member, response=response, response_time=at, update_time=now, row_version=member.row_version + 1
    )


@dataclass(frozen=True)
class Stats:
    members: int
    responses: Mapping[Response, int] = field(default_factory=dict)
    leads_created: int = 0
    revenue: int = 0
    won_opportunities: int = 0
    other_currency_opportunities: int = 0
    cost: int = 0
    cost_per_lead: int | None = None
    roi_bp: int | None = None


def compute_stats(
    *,
    cost: int,
    members: int,
    responses: Mapping[Response, int],
    leads_created: int,
    revenue: int,
    won_opportunities: int,
    other_currency_opportunities: int,
) -> Stats:
    return Stats(
        members=members,
        responses={r: responses.get(r, 0) for r in Response},
        leads_created=leads_created,
        revenue=revenue,
        won_opportunities=won_opportunities,
        other_currency_opportunities=other_currency_opportunities,
        cost=cost,
        cost_per_lead=round_half_even(cost, leads_created) if leads_created else None,
        roi_bp=round_half_even((revenue - cost) * BASIS_POINTS, cost) if cost else None,
    )
