"""crm.reporting.v1.ProjectionService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration

from crm.reporting.v1 import projection_service_pb2 as rpc
from crm.reporting.v1 import projection_service_pb2_grpc as rpc_grpc
from crm_reporting.api._base import ReportingServicerBase
from crm_reporting.service.projection_status import projection_states
from crm_shared.principal import current_principal


class ProjectionServicer(ReportingServicerBase, rpc_grpc.ProjectionServiceServicer):
    async def ListProjections(
        self, request: rpc.ListProjectionsRequest, context
    ) -> rpc.ListProjectionsResponse:
        self._app.policy.grant(current_principal(), "projections", "read")
        response = rpc.ListProjectionsResponse()
        for state in await projection_states(self._app):
            item = response.projections.add(
                name=state.consumer,
                stream=state.stream,
                applied_events=state.applied_events,
                last_sequence=max(state.acked_sequence, 0),
                pending=state.pending,
                dead_letters=state.dead_letters,
            )
            if state.last_event_time is not None:
                item.last_event_time.FromDatetime(state.last_event_time)
            if state.last_applied_time is not None:
                item.last_applied_time.FromDatetime(state.last_applied_time)
            lag = Duration()
            lag.FromNanoseconds(int(state.lag_seconds * 1e9))
            item.lag.CopyFrom(lag)
        return response
