"""crm.sales.v1.TaskService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from google.protobuf import empty_pb2

from crm.sales.v1 import task_service_pb2 as rpc
from crm.sales.v1 import task_service_pb2_grpc as rpc_grpc
from crm_sales.api import task_mappers as m
from crm_sales.api._base import SalesServicerBase
from crm_sales.api.catalog_mappers import id_from
from crm_sales.service import tasks as uc
from crm_shared.errors import InvalidArgument
from crm_shared.principal import current_principal

SERVICE = "crm.sales.v1.TaskService"


class TaskServicer(SalesServicerBase, rpc_grpc.TaskServiceServicer):
    async def GetTask(self, request: rpc.GetTaskRequest, context) -> rpc.Task:
        async with self._app.db.read_session() as session:
            task = await uc.get_task(session, self._app, current_principal(), id_from(request.name, "tasks"))
        return m.task_to_pb(task)

    async def ListTasks(self, request: rpc.ListTasksRequest, context) -> rpc.ListTasksResponse:
        view = m.VIEW_FROM_PB.get(request.view)
        if view is None:
            raise InvalidArgument.for_field("view", "unknown view")
        async with self._app.db.read_session() as session:
            page = await uc.list_tasks(
                session,
                self._app,
                current_principal(),
                page_size=request.page_size,
                page_token=request.page_token,
                filter_text=request.filter,
                order_by=request.order_by,
                view=view,
                time_zone=request.time_zone,
            )
        return rpc.ListTasksResponse(
            tasks=[m.task_to_pb(t) for t in page.items], next_page_token=page.next_page_token
        )

    async def CreateTask(self, request: rpc.CreateTaskRequest, context) -> rpc.Task:
        principal = current_principal()
        data = m.task_input(request.task)

        async def run(uow):
            return m.task_to_pb(await uc.create_task(uow, self._app, principal, data))

        return await self._once(f"/{SERVICE}/CreateTask", request, run=run, response_type=rpc.Task)

    async def UpdateTask(self, request: rpc.UpdateTaskRequest, context) -> rpc.Task:
        if not request.task.name:
            raise InvalidArgument.for_field("task.name", "is required to say which task to update")
        task_id = id_from(request.task.name, "tasks", field="task.name")
        principal = current_principal()
        data = m.task_input(request.task)
        task = await self._write(
            lambda uow: uc.update_task(
                uow, self._app, principal, task_id, data, list(request.update_mask.paths), request.task.etag
            )
        )
        return m.task_to_pb(task)

    async def DeleteTask(self, request: rpc.DeleteTaskRequest, context) -> empty_pb2.Empty:
        task_id, principal = id_from(request.name, "tasks"), current_principal()
        await self._write(lambda uow: uc.delete_task(uow, self._app, principal, task_id, request.etag))
        return empty_pb2.Empty()

    async def CompleteTask(self, request: rpc.CompleteTaskRequest, context) -> rpc.Task:
        task_id, principal = id_from(request.name, "tasks"), current_principal()
        task = await self._write(
            lambda uow: uc.complete_task(uow, self._app, principal, task_id, request.etag)
        )
        return m.task_to_pb(task)

    async def ReopenTask(self, request: rpc.ReopenTaskRequest, context) -> rpc.Task:
        task_id, principal = id_from(request.name, "tasks"), current_principal()
        task = await self._write(lambda uow: uc.reopen_task(uow, self._app, principal, task_id, request.etag))
        return m.task_to_pb(task)
