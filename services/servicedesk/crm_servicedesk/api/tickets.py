"""crm.servicedesk.v1.TicketService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.servicedesk.v1 import ticket_service_pb2 as rpc
from crm.servicedesk.v1 import ticket_service_pb2_grpc as rpc_grpc
from crm_servicedesk.api import ticket_mappers as m
from crm_servicedesk.api._base import ServicedeskServicerBase
from crm_servicedesk.app import ServicedeskApp
from crm_servicedesk.service import comments, sla
from crm_servicedesk.service import tickets as uc
from crm_shared.errors import InvalidArgument
from crm_shared.principal import Principal, current_principal

SERVICE = "crm.servicedesk.v1.TicketService"


def ticket_id(name: str, *, field: str = "name") -> str:
    """The id in "tickets/{id}" (the request validator has checked the pattern when it is set)."""
    if not name.startswith("tickets/"):
        raise InvalidArgument.for_field(field, "is required: tickets/{ticket}")
    return name.removeprefix("tickets/")


class TicketServicer(ServicedeskServicerBase, rpc_grpc.TicketServiceServicer):
    def __init__(self, app: ServicedeskApp) -> None:
        super().__init__(app)
        self._snapshots = app.snapshots

    async def _to_pb(self, session, principal: Principal, tickets) -> list[rpc.Ticket]:
        """Tickets as this caller may see them (customer_portal: no internal fields, no SLA)."""
        internal = not uc.customer_facing(self._app, principal)
        views = await sla.sla_views(session, [t.id for t in tickets]) if internal and tickets else {}
        now = self._app.clock.now()
        return [m.ticket_to_pb(t, views.get(t.id), internal_fields=internal, now=now) for t in tickets]

    async def _write_ticket(self, principal: Principal, change) -> rpc.Ticket:
        async def run(uow):
            return (await self._to_pb(uow.session, principal, [await change(uow)]))[0]

        return await self._write(run)

    async def _once_ticket(self, method: str, request, principal: Principal, change) -> rpc.Ticket:
        async def run(uow):
            return (await self._to_pb(uow.session, principal, [await change(uow)]))[0]

        return await self._once(f"/{SERVICE}/{method}", request, run=run, response_type=rpc.Ticket)

    async def GetTicket(self, request: rpc.GetTicketRequest, context) -> rpc.Ticket:
        principal = current_principal()
        async with self._app.db.read_session() as session:
            ticket = await uc.get_ticket(session, self._app, principal, ticket_id(request.name))
            return (await self._to_pb(session, principal, [ticket]))[0]

    async def ListTickets(self, request: rpc.ListTicketsRequest, context) -> rpc.ListTicketsResponse:
        principal = current_principal()
        async with self._app.db.read_session() as session:
            page = await uc.list_tickets(
                session,
                self._app,
                principal,
                page_size=request.page_size,
                page_token=request.page_token,
                filter_text=request.filter,
                order_by=request.order_by,
            )
            items = await self._to_pb(session, principal, page.items)
        return rpc.ListTicketsResponse(tickets=items, next_page_token=page.next_page_token)

    async def CreateTicket(self, request: rpc.CreateTicketRequest, context) -> rpc.Ticket:
        principal, data = current_principal(), m.ticket_input(request.ticket)
        # Asked before the transaction opens, with the caller's token and a short deadline.
        snapshot = await self._snapshots.take(data.customer)
        return await self._once_ticket(
            "CreateTicket",
            request,
            principal,
            lambda uow: uc.create_ticket(uow, self._app, principal, data, snapshot),
        )

    async def UpdateTicket(self, request: rpc.UpdateTicketRequest, context) -> rpc.Ticket:
        principal, data = current_principal(), m.ticket_input(request.ticket)
        tid = ticket_id(request.ticket.name, field="ticket.name")
        return await self._write_ticket(
            principal,
            lambda uow: uc.update_ticket(
                uow, self._app, principal, tid, data, list(request.update_mask.paths), request.ticket.etag
            ),
        )

    async def AssignTicket(self, request: rpc.AssignTicketRequest, context) -> rpc.Ticket:
        principal, tid = current_principal(), ticket_id(request.name)
        return await self._once_ticket(
            "AssignTicket",
            request,
            principal,
            lambda uow: uc.assign_ticket(
                uow,
                self._app,
                principal,
                tid,
                strategy=m.strategy_from_pb(request.strategy),
                assignee=request.assignee,
                team=request.team,
                etag=request.etag,
            ),
        )

    async def AddTicketComment(self, request: rpc.AddTicketCommentRequest, context) -> rpc.TicketComment:
        principal, tid = current_principal(), ticket_id(request.parent, field="parent")

        async def run(uow):
            comment = await comments.add_comment(
                uow, self._app, principal, tid, body=request.comment.body, internal=request.comment.internal
            )
            return m.comment_to_pb(comment)

        return await self._once(
            f"/{SERVICE}/AddTicketComment", request, run=run, response_type=rpc.TicketComment
        )

    async def ListTicketComments(
        self, request: rpc.ListTicketCommentsRequest, context
    ) -> rpc.ListTicketCommentsResponse:
        principal, tid = current_principal(), ticket_id(request.parent, field="parent")
        async with self._app.db.read_session() as session:
            page = await comments.list_comments(
                session, self._app, principal, tid, page_size=request.page_size, page_token=request.page_token
            )
        return rpc.ListTicketCommentsResponse(
            comments=[m.comment_to_pb(c) for c in page.items], next_page_token=page.next_page_token
        )

    async def HoldTicket(self, request: rpc.HoldTicketRequest, context) -> rpc.Ticket:
        principal, tid = current_principal(), ticket_id(request.name)
        return await self._once_ticket(
            "HoldTicket",
            request,
            principal,
            lambda uow: uc.hold_ticket(
                uow, self._app, principal, tid, reason=request.reason, etag=request.etag
            ),
        )

    async def ResumeTicket(self, request: rpc.ResumeTicketRequest, context) -> rpc.Ticket:
        principal, tid = current_principal(), ticket_id(request.name)
        return await self._once_ticket(
            "ResumeTicket",
            request,
            principal,
            lambda uow: uc.resume_ticket(uow, self._app, principal, tid, etag=request.etag),
        )

    async def ResolveTicket(self, request: rpc.ResolveTicketRequest, context) -> rpc.Ticket:
        principal, tid = current_principal(), ticket_id(request.name)
        return await self._once_ticket(
            "ResolveTicket",
            request,
            principal,
            lambda uow: uc.resolve_ticket(
                uow, self._app, principal, tid, resolution=request.resolution, etag=request.etag
            ),
        )

    async def CloseTicket(self, request: rpc.CloseTicketRequest, context) -> rpc.Ticket:
        principal, tid = current_principal(), ticket_id(request.name)
        return await self._once_ticket(
            "CloseTicket",
            request,
            principal,
            lambda uow: uc.close_ticket(uow, self._app, principal, tid, etag=request.etag),
        )

    async def ReopenTicket(self, request: rpc.ReopenTicketRequest, context) -> rpc.Ticket:
        principal, tid = current_principal(), ticket_id(request.name)
        return await self._once_ticket(
            "ReopenTicket",
            request,
            principal,
            lambda uow: uc.reopen_ticket(
                uow, self._app, principal, tid, reason=request.reason, etag=request.etag
            ),
        )
