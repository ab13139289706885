"""Campaigns and members in the database, and the stats queries (leads/opportunities of a campaign)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from crm_sales.adapters.campaign_tables import campaign_members, campaigns
from crm_sales.adapters.lead_tables import leads
from crm_sales.adapters.opportunity_tables import opportunities
from crm_sales.domain.campaigns import Campaign, CampaignStatus, Channel, Member, Response
from crm_shared.aip.filtering import FilterField, FilterSchema
from crm_shared.aip.paging import SortKey, keyset_after, keyset_order
from crm_shared.errors import Aborted

CAMPAIGN_ORDERABLE = ("create_time", "start_time")
DEFAULT_ORDER = "create_time desc"

CAMPAIGN_FILTERS = FilterSchema(
    {
        "status": FilterField.enum(
            campaigns.c.status, {f"CAMPAIGN_STATUS_{s.name}": s.value for s in CampaignStatus}
        ),
        "channel": FilterField.enum(
            campaigns.c.channel, {f"CAMPAIGN_CHANNEL_{c.name}": c.value for c in Channel}
        ),
        "owner": FilterField.string(campaigns.c.owner),
        "start_time": FilterField.timestamp(campaigns.c.start_time),
        "end_time": FilterField.timestamp(campaigns.c.end_time),
        "create_time": FilterField.timestamp(campaigns.c.create_time),
    }
)
MEMBER_FILTERS = FilterSchema(
    {
        "response": FilterField.enum(
            campaign_members.c.response, {f"CAMPAIGN_RESPONSE_{r.name}": r.value for r in Response}
        ),
        "member": FilterField.string(campaign_members.c.member),
        "create_time": FilterField.timestamp(campaign_members.c.create_time),
        "response_time": FilterField.timestamp(campaign_members.c.response_time),
    }
)


def sort_keys(table: sa.Table, fields: tuple[tuple[str, bool], ...]) -> list[SortKey]:
    keys = [SortKey(table.c[name], descending) for name, descending in fields]
    return [*keys, SortKey(table.c.id, fields[-1][1] if fields else False)]


def campaign_values(c: Campaign) -> dict[str, Any]:
    return {
        "id": c.id,
        "display_name": c.display_name,
        "channel": c.channel.value,
        "start_time": c.start_time,
        "end_time": c.end_time,
        "budget_currency": c.budget_currency,
        "budget_minor": c.budget,
        "status": c.status.value,
        "description": c.description,
        "owner": c.owner,
        "create_time": c.create_time,
        "update_time": c.update_time,
        "row_version": c.row_version,
    }


def campaign_from_row(row: Any) -> Campaign:
    return Campaign(
        id=row["id"],
        display_name=row["display_name"],
        channel=Channel(row["channel"]),
        start_time=row["start_time"],
        end_time=row["end_time"],
        budget_currency=row["budget_currency"],
        budget=row["budget_minor"],
        status=CampaignStatus(row["status"]),
        description=row["description"],
        owner=row["owner"],
        create_time=row["create_time"],
        update_time=row["update_time"],
        row_version=row["row_version"],
    )


def member_values(m: Member) -> dict[str, Any]:
    return {
        "id": m.id,
        "campaign_id": m.campaign_id,
        "member": m.member,
        "response": m.response.value,
        "response_time": m.response_time,
        "notes": m.notes,
        "create_time": m.create_time,
        "update_time": m.update_time,
        "row_version": m.row_version,
    }


def member_from_row(row: Any) -> Member:
    return Member(
        id=row["id"],
        campaign_id=row["campaign_id"],
        member=row["member"],
        response=Response(row["response"]),
        response_time=row["response_time"],
        notes=row["notes"],
        create_time=row["create_time"],
        update_time=row["update_time"],
        row_version=row["row_version"],
    )


class CampaignRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _page(self, query, *, where, sort, after, limit):
        if where is not None:
            query = query.where(where)
        if after is not None:
            query = query.where(keyset_after(sort, after))
        query = query.order_by(*keyset_order(sort)).limit(limit)
        return (await self.session.execute(query)).mappings().all()

    # --- campaigns -----------------------------------------------------------------------------

    async def get(self, campaign_id: str) -> Campaign | None:
        row = (
            (await self.session.execute(sa.select(campaigns).where(campaigns.c.id == campaign_id)))
            .mappings()
            .first()
        )
        return None if row is None else campaign_from_row(row)

    async def list(self, *, where, sort: Sequence[SortKey], after, limit: int) -> list[Campaign]:
        rows = await self._page(sa.select(campaigns), where=where, sort=sort, after=after, limit=limit)
        return [campaign_from_row(r) for r in rows]

    async def add(self, campaign: Campaign) -> None:
        await self.session.execute(sa.insert(campaigns).values(campaign_values(campaign)))

    async def save(self, campaign: Campaign, *, expected_row_version: int) -> None:
        values = campaign_values(campaign)
        del values["id"], values["create_time"]
        result = await self.session.execute(
            sa.update(campaigns)
            .where(campaigns.c.id == campaign.id, campaigns.c.row_version == expected_row_version)
            .values(values)
        )
        if result.rowcount != 1:
            raise Aborted(
                f"{campaign.name} was changed concurrently; read it again", reason="CONCURRENT_UPDATE"
            )

    async def remove(self, campaign_id: str) -> None:
        await self.session.execute(
            sa.delete(campaign_members).where(campaign_members.c.campaign_id == campaign_id)
        )
        await self.session.execute(sa.delete(campaigns).where(campaigns.c.id == campaign_id))

    # --- members -------------------------------------------------------------------------------

    async def get_member(self, campaign_id: str, member_id: str) -> Member | None:
        row = (
            (
                await self.session.execute(
                    sa.select(campaign_members).where(
                        campaign_members.c.campaign_id == campaign_id, campaign_members.c.id == member_id
                    )
                )
            )
            .mappings()
            .first()
        )
        return None if row is None else member_from_row(row)

    async def list_members(
        self, campaign_id: str, *, where, sort: Sequence[SortKey], after, limit: int
    ) -> list[Member]:
        query = sa.select(campaign_members).where(campaign_members.c.campaign_id == campaign_id)
        rows = await self._page(query, where=where, sort=sort, after=after, limit=limit)
        return [member_from_row(r) for r in rows]

    async def existing_members(self, campaign_id: str, names: Iterable[str]) -> set[str]:
        names = list(names)
        if not names:
            return set()
        rows = await self.session.execute(
            sa.select(campaign_members.c.member).where(
                campaign_members.c.campaign_id == campaign_id, campaign_members.c.member.in_(names)
            )
        )
        return set(rows.scalars())

    async def add_members(self, members: Sequence[Member]) -> None:
        if members:
            await self.session.execute(sa.insert(campaign_members), [member_values(m) for m in members])

    async def save_member(self, member: Member, *, expected_row_version: int) -> None:
        values = member_values(member)
        del values["id"], values["campaign_id"], values["member"], values["create_time"]
        result = await self.session.execute(
            sa.update(campaign_members)
            .where(campaign_members.c.id == member.id, campaign_members.c.row_version == expected_row_version)
            .values(values)
        )
        if result.rowcount != 1:
            raise Aborted(
                f"{member.name} was changed concurrently; read it again", reason="CONCURRENT_UPDATE"
            )

    async def remove_member(self, member_id: str) -> None:
        await self.session.execute(sa.delete(campaign_members).where(campaign_members.c.id == member_id))

    # --- stats ---------------------------------------------------------------------------------

    async def response_counts(self, campaign_id: str) -> dict[Response, int]:
        rows = await self.session.execute(
            sa.select(campaign_members.c.response, sa.func.count())
            .where(campaign_members.c.campaign_id == campaign_id)
            .group_by(campaign_members.c.response)
        )
        return {Response(response): int(count) for response, count in rows.all()}

    async def leads_created(self, campaign_id: str) -> int:
        query = sa.select(sa.func.count()).select_from(leads).where(leads.c.campaign_id == campaign_id)
        return int((await self.session.execute(query)).scalar_one())

    async def won_revenue_by_currency(self, campaign_name: str) -> dict[str, tuple[int, int]]:
        """currency -> (sum of amount_minor, count) of WON opportunities with this campaign."""
        rows = await self.session.execute(
            sa.select(
                opportunities.c.currency_code, sa.func.sum(opportunities.c.amount_minor), sa.func.count()
            )
            .where(opportunities.c.campaign == campaign_name, opportunities.c.state == "won")
            .group_by(opportunities.c.currency_code)
        )
        return {currency: (int(total or 0), int(count)) for currency, total, count in rows.all()}
