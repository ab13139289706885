"""crm.servicedesk.v1.SupportTeamService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from google.protobuf import empty_pb2

from crm.servicedesk.v1 import support_team_service_pb2 as rpc
from crm.servicedesk.v1 import support_team_service_pb2_grpc as rpc_grpc
from crm_servicedesk.api._base import ServicedeskServicerBase
from crm_servicedesk.api.ticket_mappers import strategy_from_pb
from crm_servicedesk.domain.assignment import TeamMember
from crm_servicedesk.service import support_teams as uc
from crm_servicedesk.service.support_teams import TeamInput, TeamView
from crm_servicedesk.service.ticket_events import STRATEGY_TO_PB, timestamp
from crm_shared.aip.etag import etag_for
from crm_shared.errors import InvalidArgument
from crm_shared.principal import current_principal


def team_id(name: str, *, field: str = "name") -> str:
    if not name.startswith("supportTeams/"):
        raise InvalidArgument.for_field(field, "is required: supportTeams/{team}")
    return name.removeprefix("supportTeams/")


def team_input(message: rpc.SupportTeam) -> TeamInput:
    return TeamInput(
        display_name=message.display_name,
        members=[TeamMember(agent=m.agent.strip(), available=m.available) for m in message.members],
        strategy=strategy_from_pb(message.strategy),
    )


def team_to_pb(view: TeamView) -> rpc.SupportTeam:
    team = view.team
    return rpc.SupportTeam(
        name=team.name,
        display_name=team.display_name,
        members=[
            rpc.TeamMember(
                agent=member.agent,
                available=member.available,
                open_tickets=view.open_tickets.get(member.agent, 0),
            )
            for member in team.members
        ],
        strategy=STRATEGY_TO_PB[team.strategy],
        create_time=timestamp(team.create_time),
        update_time=timestamp(team.update_time),
        etag=etag_for(team.id, team.row_version),
    )


class SupportTeamServicer(ServicedeskServicerBase, rpc_grpc.SupportTeamServiceServicer):
    async def GetSupportTeam(self, request: rpc.GetSupportTeamRequest, context) -> rpc.SupportTeam:
        async with self._app.db.read_session() as session:
            view = await uc.get_team(session, self._app, current_principal(), team_id(request.name))
        return team_to_pb(view)

    async def ListSupportTeams(
        self, request: rpc.ListSupportTeamsRequest, context
    ) -> rpc.ListSupportTeamsResponse:
        async with self._app.db.read_session() as session:
            page = await uc.list_teams(
                session,
                self._app,
                current_principal(),
                page_size=request.page_size,
                page_token=request.page_token,
            )
        return rpc.ListSupportTeamsResponse(
            support_teams=[team_to_pb(v) for v in page.items], next_page_token=page.next_page_token
        )

    async def CreateSupportTeam(self, request: rpc.CreateSupportTeamRequest, context) -> rpc.SupportTeam:
        principal, data = current_principal(), team_input(request.support_team)
        view = await self._write(
            lambda uow: uc.create_team(uow, self._app, principal, request.support_team_id, data)
        )
        return team_to_pb(view)

    async def UpdateSupportTeam(self, request: rpc.UpdateSupportTeamRequest, context) -> rpc.SupportTeam:
        principal, data = current_principal(), team_input(request.support_team)
        tid = team_id(request.support_team.name, field="support_team.name")
        view = await self._write(
            lambda uow: uc.update_team(
                uow,
                self._app,
                principal,
                tid,
                data,
                list(request.update_mask.paths),
                request.support_team.etag,
            )
        )
        return team_to_pb(view)

    async def DeleteSupportTeam(self, request: rpc.DeleteSupportTeamRequest, context) -> empty_pb2.Empty:
        principal, tid = current_principal(), team_id(request.name)
        await self._write(lambda uow: uc.delete_team(uow, self._app, principal, tid, request.etag))
        return empty_pb2.Empty()
