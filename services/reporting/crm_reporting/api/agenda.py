"""crm.reporting.v1.AgendaService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.reporting.v1 import agenda_service_pb2 as rpc
from crm.reporting.v1 import agenda_service_pb2_grpc as rpc_grpc
from crm_reporting.api import agenda_mappers as m
from crm_reporting.api._base import ReportingServicerBase
from crm_reporting.service import agenda as uc
from crm_shared.principal import current_principal


class AgendaServicer(ReportingServicerBase, rpc_grpc.AgendaServiceServicer):
    async def GetAgenda(self, request: rpc.GetAgendaRequest, context) -> rpc.Agenda:
        principal = current_principal()
        async with self._app.db.read_session() as session:
            view = await uc.get_agenda(
                session, self._app, principal, user=request.user, until=m.until_of(request)
            )
        return m.agenda_to_pb(view)

    async def WatchAgenda(self, request: rpc.WatchAgendaRequest, context):
        principal = current_principal()
        user = request.user or principal.subject
        async for item in uc.watch_agenda(
            self._app, principal, user=request.user, include_current=request.include_current
        ):
            yield m.item_to_pb(item, user=user)
