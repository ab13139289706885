"""Use cases for campaigns, their members and stats.

Campaigns carry no owner/team scope: marketing and admins manage every campaign, sales
managers read every campaign (policy `campaigns`). Members are part of the campaign:
adding, changing or removing one needs `update` on campaigns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm.common.v1 import money_pb2
from crm.sales.v1 import events_pb2
from crm_sales.adapters.campaign_repository import (
    CAMPAIGN_FILTERS,
    CAMPAIGN_ORDERABLE,
    DEFAULT_ORDER,
    MEMBER_FILTERS,
    CampaignRepository,
    sort_keys,
)
from crm_sales.adapters.campaign_tables import campaign_members, campaigns
from crm_sales.domain import campaigns as rules
from crm_sales.domain.campaigns import Campaign, CampaignInput, Member, Response, Stats
from crm_shared.aip.etag import check_etag
from crm_shared.aip.fieldmask import resolve_update_mask
from crm_shared.aip.paging import Page, clamp_page_size, parse_list_request, parse_order_by, query_fingerprint
from crm_shared.errors import AlreadyExists, InvalidArgument, NotFound
from crm_shared.ids import new_id
from crm_shared.principal import Principal

CAMPAIGNS = "campaigns"
SUBJECT_RESPONSE_RECORDED = "crm.sales.campaign.response_recorded"
SUBJECT_CAMPAIGN_CREATED = "crm.sales.campaign.created"
SUBJECT_CAMPAIGN_UPDATED = "crm.sales.campaign.updated"


def campaign_snapshot(c: Campaign) -> events_pb2.CampaignSnapshot:
    """What reporting needs of a campaign (cost per lead, acquisition cost): no personal data."""
    snapshot = events_pb2.CampaignSnapshot(
        name=c.name,
        display_name=c.display_name,
        channel=str(c.channel.name),
        budget=money_pb2.Money(currency_code=c.budget_currency, amount_minor=c.budget),
        status=str(c.status.name),
    )
    if c.start_time is not None:
        snapshot.start_time.FromDatetime(c.start_time)
    if c.end_time is not None:
        snapshot.end_time.FromDatetime(c.end_time)
    return snapshot


def campaign_not_found(name: str) -> NotFound:
    return NotFound(f"{name} not found", reason="CAMPAIGN_NOT_FOUND", metadata={"resource": name})


def member_not_found(name: str) -> NotFound:
    return NotFound(f"{name} not found", reason="CAMPAIGN_MEMBER_NOT_FOUND", metadata={"resource": name})


async def _campaign(session, deps, principal: Principal, campaign_id: str, action: str) -> Campaign:
    deps.policy.grant(principal, CAMPAIGNS, action)
    campaign = await CampaignRepository(session).get(campaign_id)
    if campaign is None:
        raise campaign_not_found(f"campaigns/{campaign_id}")
    return campaign


async def _member(session, deps, principal, campaign_id: str, member_id: str, action: str) -> Member:
    deps.policy.grant(principal, CAMPAIGNS, action)
    member = await CampaignRepository(session).get_member(campaign_id, member_id)
    if member is None:
        raise member_not_found(f"campaigns/{campaign_id}/members/{member_id}")
    return member


# --- campaigns ------------------------------------------------------------------------------------


async def create_campaign(uow, deps, principal: Principal, data: CampaignInput) -> Campaign:
    deps.policy.grant(principal, CAMPAIGNS, "create")
    campaign = rules.new_campaign(data, campaign_id=new_id(), owner=principal.subject, now=uow.now)
    await CampaignRepository(uow.session).add(campaign)
    uow.emit(
        SUBJECT_CAMPAIGN_CREATED,
        events_pb2.CampaignCreated(campaign=campaign_snapshot(campaign)),
        resource=campaign.name,
    )
    uow.audit("created", campaign.name, ["display_name", "channel", "budget"])
    return campaign


async def get_campaign(session: AsyncSession, deps, principal: Principal, campaign_id: str) -> Campaign:
    return await _campaign(session, deps, principal, campaign_id, "read")


async def list_campaigns(
    session: AsyncSession,
    deps,
    principal: Principal,
    *,
    page_size: int,
    page_token: str,
    filter_text: str,
    order_by: str,
) -> Page:
    deps.policy.grant(principal, CAMPAIGNS, "read")
    req = parse_list_request(
        deps.page_tokens,
        collection="campaigns",
        caller=principal.subject,
        page_size=page_size,
        page_token=page_token,
        filter_text=filter_text,
        filters=CAMPAIGN_FILTERS,
        order_by=order_by,
        orderable=CAMPAIGN_ORDERABLE,
        default_order=DEFAULT_ORDER,
    )
    rows = await CampaignRepository(session).list(
        where=req.where, sort=sort_keys(campaigns, req.order.fields), after=req.after, limit=req.limit + 1
    )
    return req.page(rows, deps.page_tokens)


async def update_campaign(
    uow, deps, principal: Principal, campaign_id: str, data: CampaignInput, mask: Sequence[str], etag: str
) -> Campaign:
    fields = resolve_update_mask(
        mask, writable=rules.CAMPAIGN_WRITABLE_FIELDS, output_only=rules.CAMPAIGN_OUTPUT_ONLY_FIELDS
    )
    current = await _campaign(uow.session, deps, principal, campaign_id, "update")
    check_etag(etag, current.id, current.row_version, resource=current.name)
    updated, changed = rules.update_campaign(current, data, fields, now=uow.now)
    if not changed:
        return current
    await CampaignRepository(uow.session).save(updated, expected_row_version=current.row_version)
    uow.emit(
        SUBJECT_CAMPAIGN_UPDATED,
        events_pb2.CampaignUpdated(campaign=campaign_snapshot(updated), changed_fields=list(changed)),
        resource=updated.name,
    )
    uow.audit("updated", updated.name, changed)
    return updated


async def delete_campaign(uow, deps, principal: Principal, campaign_id: str, etag: str) -> None:
    campaign = await _campaign(uow.session, deps, principal, campaign_id, "delete")
    check_etag(etag, campaign.id, campaign.row_version, resource=campaign.name)
    await CampaignRepository(uow.session).remove(campaign.id)
    uow.audit("deleted", campaign.name, [])


# --- members --------------------------------------------------------------------------------------


def _new_member(campaign_id: str, name: str, notes: str, now: datetime) -> Member:
    return Member(
        id=new_id(), campaign_id=campaign_id, member=name, notes=notes, create_time=now, update_time=now
    )


async def create_member(uow, deps, principal: Principal, campaign_id: str, name: str, notes: str) -> Member:
    campaign = await _campaign(uow.session, deps, principal, campaign_id, "update")
    if not name:
        raise InvalidArgument.for_field("member.member", "is required")
    repo = CampaignRepository(uow.session)
    if await repo.existing_members(campaign.id, [name]):
        raise AlreadyExists(
            f"{name} is already a member of {campaign.name}",
            reason="CAMPAIGN_MEMBER_EXISTS",
            metadata={"resource": campaign.name, "member": name},
        )
    member = _new_member(campaign.id, name, notes, uow.now)
    await _insert(repo, [member], campaign)
    uow.audit("created", member.name, ["member"])
    return member


async def _insert(repo: CampaignRepository, members: list[Member], campaign: Campaign) -> None:
    try:
        await repo.add_members(members)
    except IntegrityError:
        raise AlreadyExists(
            f"a member was added to {campaign.name} at the same moment; retry",
            reason="CAMPAIGN_MEMBER_EXISTS",
            metadata={"resource": campaign.name},
        ) from None


async def add_members(
    uow, deps, principal: Principal, campaign_id: str, names: Sequence[str]
) -> tuple[list[Member], list[str]]:
    """Adds the names not yet members (first occurrence wins); returns (added, skipped)."""
    campaign = await _campaign(uow.session, deps, principal, campaign_id, "update")
    repo = CampaignRepository(uow.session)
    existing = await repo.existing_members(campaign.id, names)
    added: list[Member] = []
    skipped: list[str] = []
    seen: set[str] = set()
    for name in names:
        if name in existing or name in seen:
            skipped.append(name)
            continue
        seen.add(name)
        added.append(_new_member(campaign.id, name, "", uow.now))
    await _insert(repo, added, campaign)
    if added:
        uow.audit("members_added", campaign.name, ["members"])
    return added, skipped


async def get_member(session, deps, principal: Principal, campaign_id: str, member_id: str) -> Member:
    await _campaign(session, deps, principal, campaign_id, "read")
    return await _member(session, deps, principal, campaign_id, member_id, "read")


async def list_members(
    session,
    deps,
    principal: Principal,
    campaign_id: str,
    *,
    page_size: int,
    page_token: str,
    filter_text: str,
) -> Page:
    campaign = await _campaign(session, deps, principal, campaign_id, "read")
    limit = clamp_page_size(page_size)
    where = MEMBER_FILTERS.compile(filter_text)
    order = parse_order_by("", allowed=("create_time",), default="create_time")
    query = query_fingerprint("campaign_members", campaign.id, filter_text.strip(), principal.subject)
    after = deps.page_tokens.decode(page_token, query=query) if page_token else None
    rows = await CampaignRepository(session).list_members(
        campaign.id, where=where, sort=sort_keys(campaign_members, order.fields), after=after, limit=limit + 1
    )
    page, more = rows[:limit], len(rows) > limit
    token = ""
    if more:
        last = page[-1]
        token = deps.page_tokens.encode([last.create_time, last.id], query=query)
    return Page(page, token)


async def update_member(
    uow,
    deps,
    principal: Principal,
    campaign_id: str,
    member_id: str,
    notes: str,
    mask: Sequence[str],
    etag: str,
) -> Member:
    resolve_update_mask(
        mask, writable=rules.MEMBER_WRITABLE_FIELDS, output_only=rules.MEMBER_OUTPUT_ONLY_FIELDS
    )
    current = await _member(uow.session, deps, principal, campaign_id, member_id, "update")
    check_etag(etag, current.id, current.row_version, resource=current.name)
    if notes == current.notes:
        return current
    updated = replace(current, notes=notes, update_time=uow.now, row_version=current.row_version + 1)
    await CampaignRepository(uow.session).save_member(updated, expected_row_version=current.row_version)
    uow.audit("updated", updated.name, ["notes"])
    return updated


async def delete_member(uow, deps, principal: Principal, campaign_id: str, member_id: str, etag: str) -> None:
    member = await _member(uow.session, deps, principal, campaign_id, member_id, "update")
    check_etag(etag, member.id, member.row_version, resource=member.name)
    await CampaignRepository(uow.session).remove_member(member.id)
    uow.audit("deleted", member.name, [])


async def record_response(
    uow, deps, principal: Principal, campaign_id: str, member_id: str, response: Response, at: datetime | None
) -> Member:
    current = await _member(uow.session, deps, principal, campaign_id, member_id, "update")
    updated = rules.record_response(current, response, at=at or uow.now, now=uow.now)
    await CampaignRepository(uow.session).save_member(updated, expected_row_version=current.row_version)
    campaign_name = f"campaigns/{campaign_id}"
    uow.emit(
        SUBJECT_RESPONSE_RECORDED,
        events_pb2.CampaignResponseRecorded(
            campaign=campaign_name, member=updated.member, response=response.value
        ),
        resource=updated.name,
    )
    uow.audit("response_recorded", updated.name, ["response", "response_time"])
    return updated


# --- stats ----------------------------------------------------------------------------------------


async def campaign_stats(session, deps, principal: Principal, campaign_id: str) -> tuple[Campaign, Stats]:
    campaign = await _campaign(session, deps, principal, campaign_id, "read")
    repo = CampaignRepository(session)
    responses = await repo.response_counts(campaign.id)
    revenue = await repo.won_revenue_by_currency(campaign.name)
    in_currency, won = revenue.get(campaign.budget_currency, (0, 0))
    other = sum(count for currency, (_, count) in revenue.items() if currency != campaign.budget_currency)
    stats = rules.compute_stats(
        cost=campaign.budget,
        members=sum(responses.values()),
        responses=responses,
        leads_created=await repo.leads_created(campaign.id),
        revenue=in_currency,
        won_opportunities=won,
        other_currency_opportunities=other,
    )
    return campaign, stats
