"""crm.sales.v1.CampaignService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from google.protobuf import empty_pb2

from crm.sales.v1 import campaign_service_pb2 as rpc
from crm.sales.v1 import campaign_service_pb2_grpc as rpc_grpc
from crm_sales.api import campaign_mappers as m
from crm_sales.api._base import SalesServicerBase
from crm_sales.api.catalog_mappers import from_timestamp, id_from
from crm_sales.service import campaigns as uc
from crm_shared.errors import InvalidArgument
from crm_shared.principal import current_principal

SERVICE = "crm.sales.v1.CampaignService"


def member_ids(name: str, *, field: str = "name") -> tuple[str, str]:
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "campaigns" or parts[2] != "members" or not parts[1] or not parts[3]:
        raise InvalidArgument.for_field(field, "must look like campaigns/{campaign}/members/{member}")
    return parts[1], parts[3]


class CampaignServicer(SalesServicerBase, rpc_grpc.CampaignServiceServicer):
    async def GetCampaign(self, request: rpc.GetCampaignRequest, context) -> rpc.Campaign:
        async with self._app.db.read_session() as session:
            c = await uc.get_campaign(
                session, self._app, current_principal(), id_from(request.name, "campaigns")
            )
        return m.campaign_to_pb(c)

    async def ListCampaigns(self, request: rpc.ListCampaignsRequest, context) -> rpc.ListCampaignsResponse:
        async with self._app.db.read_session() as session:
            page = await uc.list_campaigns(
                session,
                self._app,
                current_principal(),
                page_size=request.page_size,
                page_token=request.page_token,
                filter_text=request.filter,
                order_by=request.order_by,
            )
        return rpc.ListCampaignsResponse(
            campaigns=[m.campaign_to_pb(c) for c in page.items], next_page_token=page.next_page_token
        )

    async def CreateCampaign(self, request: rpc.CreateCampaignRequest, context) -> rpc.Campaign:
        principal, data = current_principal(), m.campaign_input(request.campaign)

        async def run(uow):
            return m.campaign_to_pb(await uc.create_campaign(uow, self._app, principal, data))

        return await self._once(f"/{SERVICE}/CreateCampaign", request, run=run, response_type=rpc.Campaign)

    async def UpdateCampaign(self, request: rpc.UpdateCampaignRequest, context) -> rpc.Campaign:
        if not request.campaign.name:
            raise InvalidArgument.for_field("campaign.name", "is required to say which campaign to update")
        campaign_id = id_from(request.campaign.name, "campaigns", field="campaign.name")
        principal, data = current_principal(), m.campaign_input(request.campaign)
        c = await self._write(
            lambda uow: uc.update_campaign(
                uow,
                self._app,
                principal,
                campaign_id,
                data,
                list(request.update_mask.paths),
                request.campaign.etag,
            )
        )
        return m.campaign_to_pb(c)

    async def DeleteCampaign(self, request: rpc.DeleteCampaignRequest, context) -> empty_pb2.Empty:
        campaign_id, principal = id_from(request.name, "campaigns"), current_principal()
        await self._write(
            lambda uow: uc.delete_campaign(uow, self._app, principal, campaign_id, request.etag)
        )
        return empty_pb2.Empty()

    async def GetCampaignMember(self, request: rpc.GetCampaignMemberRequest, context) -> rpc.CampaignMember:
        campaign_id, member_id = member_ids(request.name)
        async with self._app.db.read_session() as session:
            member = await uc.get_member(session, self._app, current_principal(), campaign_id, member_id)
        return m.member_to_pb(member)

    async def ListCampaignMembers(
        self, request: rpc.ListCampaignMembersRequest, context
    ) -> rpc.ListCampaignMembersResponse:
        campaign_id = id_from(request.parent, "campaigns", field="parent")
        async with self._app.db.read_session() as session:
            page = await uc.list_members(
                session,
                self._app,
                current_principal(),
                campaign_id,
                page_size=request.page_size,
                page_token=request.page_token,
                filter_text=request.filter,
            )
        return rpc.ListCampaignMembersResponse(
            members=[m.member_to_pb(x) for x in page.items], next_page_token=page.next_page_token
        )

    async def CreateCampaignMember(
        self, request: rpc.CreateCampaignMemberRequest, context
    ) -> rpc.CampaignMember:
        campaign_id = id_from(request.parent, "campaigns", field="parent")
        principal = current_principal()

        async def run(uow):
            member = await uc.create_member(
                uow, self._app, principal, campaign_id, request.member.member, request.member.notes
            )
            return m.member_to_pb(member)

        return await self._once(
            f"/{SERVICE}/CreateCampaignMember", request, run=run, response_type=rpc.CampaignMember
        )

    async def UpdateCampaignMember(
        self, request: rpc.UpdateCampaignMemberRequest, context
    ) -> rpc.CampaignMember:
        if not request.member.name:
            raise InvalidArgument.for_field("member.name", "is required to say which member to update")
        campaign_id, member_id = member_ids(request.member.name, field="member.name")
        principal = current_principal()
        member = await self._write(
            lambda uow: uc.update_member(
                uow,
                self._app,
                principal,
                campaign_id,
                member_id,
                request.member.notes,
                list(request.update_mask.paths),
                request.member.etag,
            )
        )
        return m.member_to_pb(member)

    async def DeleteCampaignMember(
        self, request: rpc.DeleteCampaignMemberRequest, context
    ) -> empty_pb2.Empty:
        campaign_id, member_id = member_ids(request.name)
        principal = current_principal()
        await self._write(
            lambda uow: uc.delete_member(uow, self._app, principal, campaign_id, member_id, request.etag)
        )
        return empty_pb2.Empty()

    async def AddCampaignMembers(
        self, request: rpc.AddCampaignMembersRequest, context
    ) -> rpc.AddCampaignMembersResponse:
        campaign_id = id_from(request.parent, "campaigns", field="parent")
        principal, names = current_principal(), list(request.members)

        async def run(uow):
            added, skipped = await uc.add_members(uow, self._app, principal, campaign_id, names)
            return rpc.AddCampaignMembersResponse(added=[m.member_to_pb(x) for x in added], skipped=skipped)

        return await self._once(
            f"/{SERVICE}/AddCampaignMembers", request, run=run, response_type=rpc.AddCampaignMembersResponse
        )

    async def RecordCampaignResponse(
        self, request: rpc.RecordCampaignResponseRequest, context
    ) -> rpc.CampaignMember:
        campaign_id, member_id = member_ids(request.name)
        response = m.RESPONSE_FROM_PB.get(request.response)
        if response is None:
            raise InvalidArgument.for_field("response", "is required")
        at = from_timestamp(request.response_time) if request.HasField("response_time") else None
        principal = current_principal()

        async def run(uow):
            member = await uc.record_response(uow, self._app, principal, campaign_id, member_id, response, at)
            return m.member_to_pb(member)

        return await self._once(
            f"/{SERVICE}/RecordCampaignResponse", request, run=run, response_type=rpc.CampaignMember
        )

    async def GetCampaignStats(self, request: rpc.GetCampaignStatsRequest, context) -> rpc.CampaignStats:
        campaign_id = id_from(request.name, "campaigns")
        async with self._app.db.read_session() as session:
            campaign, stats = await uc.campaign_stats(session, self._app, current_principal(), campaign_id)
        return m.stats_to_pb(campaign, stats)
