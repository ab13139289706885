"""crm.customer.v1.FollowUpService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.customer.v1 import follow_up_service_pb2 as rpc
from crm.customer.v1 import follow_up_service_pb2_grpc as rpc_grpc
from crm_customer.api import mappers, pool_mappers
from crm_customer.app import CustomerApp
from crm_customer.service import follow_ups
from crm_shared.db.idempotency import idempotent
from crm_shared.principal import current_principal

SERVICE = "crm.customer.v1.FollowUpService"


class FollowUpServicer(rpc_grpc.FollowUpServiceServicer):
    def __init__(self, app: CustomerApp) -> None:
        self._app = app
        self._db = app.db
        self._uow = app.uow_factory
        self._deps = app.deps

    async def CreateFollowUp(self, request: rpc.CreateFollowUpRequest, context) -> rpc.FollowUp:
        customer_id = mappers.customer_id_from(request.parent, field="parent")
        principal = current_principal()
        data = pool_mappers.follow_up_input(request.follow_up)
        created: dict[str, object] = {}

        async def run(uow):
            created["follow_up"] = follow_up = await follow_ups.create_follow_up(
                uow, self._deps, principal, customer_id, data
            )
            return rpc.FollowUp(name=follow_up.name)

        stored = await idempotent(
            self._uow,
            method=f"/{SERVICE}/CreateFollowUp",
            request_id=request.request_id,
            request=request,
            response_type=rpc.FollowUp,
            run=run,
        )
        if "follow_up" in created:
            return pool_mappers.follow_up_to_pb(created["follow_up"])
        parent_id, follow_up_id = pool_mappers.follow_up_ids_from(stored.name)
        async with self._db.read_session() as session:
            follow_up = await follow_ups.get_follow_up(
                session, self._deps, principal, parent_id, follow_up_id
            )
        return pool_mappers.follow_up_to_pb(follow_up)

    async def ListFollowUps(self, request: rpc.ListFollowUpsRequest, context) -> rpc.ListFollowUpsResponse:
        async with self._db.read_session() as session:
            page = await follow_ups.list_follow_ups(
                session,
                self._deps,
                current_principal(),
                mappers.customer_id_from(request.parent, field="parent"),
                page_size=request.page_size,
                page_token=request.page_token,
            )
        return rpc.ListFollowUpsResponse(
            follow_ups=[pool_mappers.follow_up_to_pb(f) for f in page.follow_ups],
            next_page_token=page.next_page_token,
        )
