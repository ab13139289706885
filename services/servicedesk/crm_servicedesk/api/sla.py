"""crm.servicedesk.v1.SlaService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from datetime import UTC

from google.protobuf import empty_pb2

from crm.servicedesk.v1 import sla_service_pb2 as rpc
from crm.servicedesk.v1 import sla_service_pb2_grpc as rpc_grpc
from crm_servicedesk.api import sla_mappers as m
from crm_servicedesk.api._base import ServicedeskServicerBase
from crm_servicedesk.service import sla_admin as uc
from crm_servicedesk.service.ticket_events import timestamp
from crm_shared.principal import current_principal

SERVICE = "crm.servicedesk.v1.SlaService"
CALENDARS = "businessCalendars"
POLICIES = "slaPolicies"


class SlaServicer(ServicedeskServicerBase, rpc_grpc.SlaServiceServicer):
    # --- business calendars ---

    async def GetBusinessCalendar(
        self, request: rpc.GetBusinessCalendarRequest, context
    ) -> rpc.BusinessCalendar:
        async with self._app.db.read_session() as session:
            stored = await uc.get_calendar(session, m.resource_id(request.name, CALENDARS))
        return m.calendar_to_pb(stored)

    async def ListBusinessCalendars(
        self, request: rpc.ListBusinessCalendarsRequest, context
    ) -> rpc.ListBusinessCalendarsResponse:
        async with self._app.db.read_session() as session:
            page = await uc.list_calendars(
                session,
                self._app,
                current_principal(),
                page_size=request.page_size,
                page_token=request.page_token,
            )
        return rpc.ListBusinessCalendarsResponse(
            business_calendars=[m.calendar_to_pb(c) for c in page.items], next_page_token=page.next_page_token
        )

    async def CreateBusinessCalendar(
        self, request: rpc.CreateBusinessCalendarRequest, context
    ) -> rpc.BusinessCalendar:
        data = m.calendar_input(request.business_calendar)

        async def run(uow):
            return m.calendar_to_pb(await uc.create_calendar(uow, data))

        return await self._once(
            f"/{SERVICE}/CreateBusinessCalendar", request, run=run, response_type=rpc.BusinessCalendar
        )

    async def UpdateBusinessCalendar(
        self, request: rpc.UpdateBusinessCalendarRequest, context
    ) -> rpc.BusinessCalendar:
        message = request.business_calendar
        calendar_id = m.resource_id(message.name, CALENDARS, field="business_calendar.name")
        data = m.calendar_input(message)
        stored = await self._write(
            lambda uow: uc.update_calendar(
                uow, calendar_id, data, list(request.update_mask.paths), message.etag
            )
        )
        return m.calendar_to_pb(stored)

    async def DeleteBusinessCalendar(
        self, request: rpc.DeleteBusinessCalendarRequest, context
    ) -> empty_pb2.Empty:
        calendar_id = m.resource_id(request.name, CALENDARS)
        await self._write(lambda uow: uc.delete_calendar(uow, calendar_id, request.etag))
        return empty_pb2.Empty()

    async def AddBusinessTime(
        self, request: rpc.AddBusinessTimeRequest, context
    ) -> rpc.AddBusinessTimeResponse:
        calendar_id = m.resource_id(request.calendar, CALENDARS, field="calendar")
        async with self._app.db.read_session() as session:
            due = await uc.preview_due_time(
                session,
                calendar_id,
                request.start_time.ToDatetime(tzinfo=UTC),
                request.duration.ToTimedelta(),
            )
        return rpc.AddBusinessTimeResponse(due_time=timestamp(due))

    # --- SLA policies ---

    async def GetSlaPolicy(self, request: rpc.GetSlaPolicyRequest, context) -> rpc.SlaPolicy:
        async with self._app.db.read_session() as session:
            policy = await uc.get_policy(session, m.resource_id(request.name, POLICIES))
        return m.policy_to_pb(policy)

    async def ListSlaPolicies(
        self, request: rpc.ListSlaPoliciesRequest, context
    ) -> rpc.ListSlaPoliciesResponse:
        async with self._app.db.read_session() as session:
            page = await uc.list_policies(
                session,
                self._app,
                current_principal(),
                page_size=request.page_size,
                page_token=request.page_token,
                filter_text=request.filter,
            )
        return rpc.ListSlaPoliciesResponse(
            sla_policies=[m.policy_to_pb(p) for p in page.items], next_page_token=page.next_page_token
        )

    async def CreateSlaPolicy(self, request: rpc.CreateSlaPolicyRequest, context) -> rpc.SlaPolicy:
        data = m.policy_input(request.sla_policy)

        async def run(uow):
            return m.policy_to_pb(await uc.create_policy(uow, data))

        return await self._once(f"/{SERVICE}/CreateSlaPolicy", request, run=run, response_type=rpc.SlaPolicy)

    async def UpdateSlaPolicy(self, request: rpc.UpdateSlaPolicyRequest, context) -> rpc.SlaPolicy:
        message = request.sla_policy
        policy_id = m.resource_id(message.name, POLICIES, field="sla_policy.name")
        data = m.policy_input(message)
        policy = await self._write(
            lambda uow: uc.update_policy(uow, policy_id, data, list(request.update_mask.paths), message.etag)
        )
        return m.policy_to_pb(policy)

    async def DeleteSlaPolicy(self, request: rpc.DeleteSlaPolicyRequest, context) -> empty_pb2.Empty:
        policy_id = m.resource_id(request.name, POLICIES)
        await self._write(lambda uow: uc.delete_policy(uow, policy_id, request.etag))
        return empty_pb2.Empty()
