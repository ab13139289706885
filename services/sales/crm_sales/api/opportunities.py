"""crm.sales.v1.OpportunityService over gRPC (thin: parse, call a use case, map the result).

Authentication, the access policy, request validation and error mapping happen
in the shared interceptors; nothing here touches status codes directly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from google.protobuf import empty_pb2

from crm.sales.v1 import opportunity_service_pb2 as pb
from crm.sales.v1 import opportunity_service_pb2_grpc as rpc_grpc
from crm_sales.api import opportunity_mappers as mappers
from crm_sales.app import SalesApp
from crm_sales.service import opportunities, pipelines
from crm_shared.db.idempotency import create_once, in_unit_of_work
from crm_shared.errors import InvalidArgument
from crm_shared.principal import current_principal

SERVICE = "crm.sales.v1.OpportunityService"


class OpportunityServicer(rpc_grpc.OpportunityServiceServicer):
    def __init__(self, app: SalesApp) -> None:
        self._app = app

    async def _write(self, run: Callable[[object], Awaitable[object]]):
        return await in_unit_of_work(self._app.uow_factory, run)

    async def _once(self, method: str, request, *, run, response_type, reread):
        return await create_once(
            self._app.uow_factory,
            method=f"/{SERVICE}/{method}",
            request=request,
            request_id=request.request_id,
            run=run,
            response_type=response_type,
            reread=reread,
        )

    async def _reread_opportunity(self, name: str):
        async with self._app.db.read_session() as session:
            return await opportunities.get_opportunity(
                session, self._app, current_principal(), mappers.opportunity_id_from(name)
            )

    # --- pipelines -----------------------------------------------------------------------------

    async def GetPipeline(self, request: pb.GetPipelineRequest, context) -> pb.Pipeline:
        pipeline_id = mappers.pipeline_id_from(request.name)
        async with self._app.db.read_session() as session:
            pipeline = await pipelines.get_pipeline(session, self._app, current_principal(), pipeline_id)
        return mappers.pipeline_to_pb(pipeline)

    async def ListPipelines(self, request: pb.ListPipelinesRequest, context) -> pb.ListPipelinesResponse:
        async with self._app.db.read_session() as session:
            page = await pipelines.list_pipelines(
                session,
                self._app,
                current_principal(),
                page_size=request.page_size,
                page_token=request.page_token,
            )
        return pb.ListPipelinesResponse(
            pipelines=[mappers.pipeline_to_pb(p) for p in page.pipelines],
            next_page_token=page.next_page_token,
        )

    async def CreatePipeline(self, request: pb.CreatePipelineRequest, context) -> pb.Pipeline:
        principal = current_principal()
        data = mappers.pipeline_input(request.pipeline)

        async def reread(name: str):
            async with self._app.db.read_session() as session:
                return await pipelines.get_pipeline(
                    session, self._app, principal, mappers.pipeline_id_from(name)
                )

        pipeline = await self._once(
            "CreatePipeline",
            request,
            run=lambda uow: pipelines.create_pipeline(uow, self._app, principal, data, request.pipeline_id),
            response_type=pb.Pipeline,
            reread=reread,
        )
        return mappers.pipeline_to_pb(pipeline)

    async def UpdatePipeline(self, request: pb.UpdatePipelineRequest, context) -> pb.Pipeline:
        if not request.pipeline.name:
            raise InvalidArgument.for_field("pipeline.name", "is required to say which pipeline to update")
        pipeline_id = mappers.pipeline_id_from(request.pipeline.name, field="pipeline.name")
        principal = current_principal()
        data = mappers.pipeline_input(request.pipeline)
        pipeline = await self._write(
            lambda uow: pipelines.update_pipeline(
                uow,
                self._app,
                principal,
                pipeline_id,
                data,
                list(request.update_mask.paths),
                request.pipeline.etag,
            )
        )
        return mappers.pipeline_to_pb(pipeline)

    async def DeletePipeline(self, request: pb.DeletePipelineRequest, context) -> empty_pb2.Empty:
        pipeline_id = mappers.pipeline_id_from(request.name)
        principal = current_principal()
        await self._write(
            lambda uow: pipelines.delete_pipeline(uow, self._app, principal, pipeline_id, request.etag)
        )
        return empty_pb2.Empty()

    # --- opportunities -------------------------------------------------------------------------

    async def GetOpportunity(self, request: pb.GetOpportunityRequest, context) -> pb.Opportunity:
        return mappers.opportunity_to_pb(await self._reread_opportunity(request.name))

    async def ListOpportunities(
        self, request: pb.ListOpportunitiesRequest, context
    ) -> pb.ListOpportunitiesResponse:
        async with self._app.db.read_session() as session:
            page = await opportunities.list_opportunities(
                session,
                self._app,
                current_principal(),
                page_size=request.page_size,
                page_token=request.page_token,
                filter_text=request.filter,
                order_by=request.order_by,
            )
        return pb.ListOpportunitiesResponse(
            opportunities=[mappers.opportunity_to_pb(o) for o in page.opportunities],
            next_page_token=page.next_page_token,
        )

    async def CreateOpportunity(self, request: pb.CreateOpportunityRequest, context) -> pb.Opportunity:
        principal = current_principal()
        data = mappers.opportunity_input(request.opportunity)
        opportunity = await self._once(
            "CreateOpportunity",
            request,
            run=lambda uow: opportunities.create_opportunity(uow, self._app, principal, data),
            response_type=pb.Opportunity,
            reread=self._reread_opportunity,
        )
        return mappers.opportunity_to_pb(opportunity)

    async def UpdateOpportunity(self, request: pb.UpdateOpportunityRequest, context) -> pb.Opportunity:
        if not request.opportunity.name:
            raise InvalidArgument.for_field(
                "opportunity.name", "is required to say which opportunity to update"
            )
        opportunity_id = mappers.opportunity_id_from(request.opportunity.name, field="opportunity.name")
        principal = current_principal()
        data = mappers.opportunity_input(request.opportunity)
        opportunity = await self._write(
            lambda uow: opportunities.update_opportunity(
                uow,
                self._app,
                principal,
                opportunity_id,
                data,
                list(request.update_mask.paths),
                request.opportunity.etag,
            )
        )
        return mappers.opportunity_to_pb(opportunity)

    async def DeleteOpportunity(self, request: pb.DeleteOpportunityRequest, context) -> empty_pb2.Empty:
        opportunity_id = mappers.opportunity_id_from(request.name)
        principal = current_principal()
        await self._write(
            lambda uow: opportunities.delete_opportunity(
                uow, self._app, principal, opportunity_id, request.etag
            )
        )
        return empty_pb2.Empty()

    async def MoveOpportunityStage(self, request: pb.MoveOpportunityStageRequest, context) -> pb.Opportunity:
        opportunity_id = mappers.opportunity_id_from(request.name)
        principal = current_principal()
        probability = request.probability if request.HasField("probability") else None
        opportunity = await self._once(
            "MoveOpportunityStage",
            request,
            run=lambda uow: opportunities.move_opportunity_stage(
                uow, self._app, principal, opportunity_id, request.stage, probability, request.etag
            ),
            response_type=pb.Opportunity,
            reread=self._reread_opportunity,
        )
        return mappers.opportunity_to_pb(opportunity)

    async def WinOpportunity(self, request: pb.WinOpportunityRequest, context) -> pb.Opportunity:
        opportunity_id = mappers.opportunity_id_from(request.name)
        principal = current_principal()
        opportunity = await self._once(
            "WinOpportunity",
            request,
            run=lambda uow: opportunities.win_opportunity(
                uow, self._app, principal, opportunity_id, request.stage, request.etag
            ),
            response_type=pb.Opportunity,
            reread=self._reread_opportunity,
        )
        return mappers.opportunity_to_pb(opportunity)

    async def LoseOpportunity(self, request: pb.LoseOpportunityRequest, context) -> pb.Opportunity:
        opportunity_id = mappers.opportunity_id_from(request.name)
        principal = current_principal()
        opportunity = await self._once(
            "LoseOpportunity",
            request,
            run=lambda uow: opportunities.lose_opportunity(
                uow,
                self._app,
                principal,
                opportunity_id,
                lost_reason=request.lost_reason,
                competitor=request.competitor,
                stage=request.stage,
                etag=request.etag,
            ),
            response_type=pb.Opportunity,
            reread=self._reread_opportunity,
        )
        return mappers.opportunity_to_pb(opportunity)

    async def ReopenOpportunity(self, request: pb.ReopenOpportunityRequest, context) -> pb.Opportunity:
        opportunity_id = mappers.opportunity_id_from(request.name)
        principal = current_principal()
        opportunity = await self._once(
            "ReopenOpportunity",
            request,
            run=lambda uow: opportunities.reopen_opportunity(
                uow, self._app, principal, opportunity_id, request.stage, request.etag
            ),
            response_type=pb.Opportunity,
            reread=self._reread_opportunity,
        )
        return mappers.opportunity_to_pb(opportunity)
