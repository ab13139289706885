"""crm.reporting.v1.CustomerInsightService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.reporting.v1 import customer_insight_service_pb2 as rpc
from crm.reporting.v1 import customer_insight_service_pb2_grpc as rpc_grpc
from crm_reporting.api import customer_insight_mappers as m
from crm_reporting.api._base import ReportingServicerBase
from crm_reporting.service.customer_360 import customer_360
from crm_shared.errors import Unavailable
from crm_shared.principal import current_principal


def _analytics():
    try:
        from crm_reporting.service import analytics
    except ImportError as exc:
        raise Unavailable("customer analytics are not available") from exc
    return analytics


class CustomerInsightServicer(ReportingServicerBase, rpc_grpc.CustomerInsightServiceServicer):
    async def GetCustomer360(self, request: rpc.GetCustomer360Request, context) -> rpc.Customer360:
        principal = current_principal()
        async with self._app.db.read_session() as session:
            view = await customer_360(
                session, self._app, principal, request.customer, timeline_limit=request.timeline_limit
            )
        return m.customer_360_to_pb(view)

    async def ListCustomerScores(
        self, request: rpc.ListCustomerScoresRequest, context
    ) -> rpc.ListCustomerScoresResponse:
        analytics = _analytics()
        async with self._app.db.read_session() as session:
            result = await analytics.list_scores(session, self._app, current_principal(), request)
        if isinstance(result, rpc.ListCustomerScoresResponse):
            return result
        from crm_reporting.api import analytics_mappers

        return analytics_mappers.scores_response(result)

    async def GetCustomerAnalytics(
        self, request: rpc.GetCustomerAnalyticsRequest, context
    ) -> rpc.CustomerAnalytics:
        analytics = _analytics()
        async with self._app.db.read_session() as session:
            result = await analytics.customer_analytics(session, self._app, current_principal(), request)
        if isinstance(result, rpc.CustomerAnalytics):
            return result
        from crm_reporting.api import analytics_mappers

        return analytics_mappers.analytics_to_pb(result)
