"""crm.contract.v1.ApprovalService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from google.protobuf import empty_pb2

from crm.contract.v1 import approval_service_pb2 as rpc
from crm.contract.v1 import approval_service_pb2_grpc as rpc_grpc
from crm_contract.api import approval_mappers as m
from crm_contract.api._base import ContractServicerBase
from crm_contract.service import approvals as uc
from crm_shared.errors import InvalidArgument
from crm_shared.principal import current_principal

SERVICE = "crm.contract.v1.ApprovalService"
WORKFLOWS = "approvalWorkflows/"


class ApprovalServicer(ContractServicerBase, rpc_grpc.ApprovalServiceServicer):
    # --- workflows -------------------------------------------------------------------------------

    async def GetApprovalWorkflow(
        self, request: rpc.GetApprovalWorkflowRequest, context
    ) -> rpc.ApprovalWorkflow:
        async with self._app.db.read_session() as session:
            workflow = await uc.get_workflow(
                session, self._app, current_principal(), request.name.removeprefix(WORKFLOWS)
            )
        return m.workflow_to_pb(workflow)

    async def ListApprovalWorkflows(
        self, request: rpc.ListApprovalWorkflowsRequest, context
    ) -> rpc.ListApprovalWorkflowsResponse:
        async with self._app.db.read_session() as session:
            page = await uc.list_workflows(
                session,
                self._app,
                current_principal(),
                page_size=request.page_size,
                page_token=request.page_token,
                filter_text=request.filter,
            )
        return rpc.ListApprovalWorkflowsResponse(
            approval_workflows=[m.workflow_to_pb(w) for w in page.items], next_page_token=page.next_page_token
        )

    async def CreateApprovalWorkflow(
        self, request: rpc.CreateApprovalWorkflowRequest, context
    ) -> rpc.ApprovalWorkflow:
        principal, data = current_principal(), m.workflow_input(request.approval_workflow)

        async def run(uow):
            return m.workflow_to_pb(await uc.create_workflow(uow, self._app, principal, data))

        return await self._once(
            f"/{SERVICE}/CreateApprovalWorkflow", request, run=run, response_type=rpc.ApprovalWorkflow
        )

    async def UpdateApprovalWorkflow(
        self, request: rpc.UpdateApprovalWorkflowRequest, context
    ) -> rpc.ApprovalWorkflow:
        message = request.approval_workflow
        if not message.name:
            raise InvalidArgument.for_field(
                "approval_workflow.name", "is required to say which workflow to update"
            )
        principal, data = current_principal(), m.workflow_input(message)
        workflow = await self._write(
            lambda uow: uc.update_workflow(
                uow,
                self._app,
                principal,
                message.name.removeprefix(WORKFLOWS),
                data,
                list(request.update_mask.paths),
                message.etag,
            )
        )
        return m.workflow_to_pb(workflow)

    async def DeleteApprovalWorkflow(
        self, request: rpc.DeleteApprovalWorkflowRequest, context
    ) -> empty_pb2.Empty:
        principal = current_principal()
        await self._write(
            lambda uow: uc.delete_workflow(
                uow, self._app, principal, request.name.removeprefix(WORKFLOWS), request.etag
            )
        )
        return empty_pb2.Empty()

    # --- approvals -------------------------------------------------------------------------------

    async def GetApproval(self, request: rpc.GetApprovalRequest, context) -> rpc.Approval:
        async with self._app.db.read_session() as session:
            approval = await uc.get_approval(
                session, self._app, current_principal(), request.name.removeprefix("approvals/")
            )
        return m.approval_to_pb(approval)

    async def ListApprovals(self, request: rpc.ListApprovalsRequest, context) -> rpc.ListApprovalsResponse:
        async with self._app.db.read_session() as session:
            page = await uc.list_approvals(
                session,
                self._app,
                current_principal(),
                page_size=request.page_size,
                page_token=request.page_token,
                filter_text=request.filter,
                awaiting_me=request.awaiting_me,
            )
        return rpc.ListApprovalsResponse(
            approvals=[m.approval_to_pb(a) for a in page.items], next_page_token=page.next_page_token
        )
