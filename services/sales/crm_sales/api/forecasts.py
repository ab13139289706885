"""crm.sales.v1.ForecastService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from datetime import UTC

from crm.sales.v1 import forecast_service_pb2 as pb
from crm.sales.v1 import forecast_service_pb2_grpc as rpc_grpc
from crm_sales.api.opportunity_mappers import forecast_to_pb
from crm_sales.app import SalesApp
from crm_sales.service import forecasts
from crm_shared.principal import current_principal

SERVICE = "crm.sales.v1.ForecastService"


class ForecastServicer(rpc_grpc.ForecastServiceServicer):
    def __init__(self, app: SalesApp) -> None:
        self._app = app

    async def GetForecast(self, request: pb.GetForecastRequest, context) -> pb.Forecast:
        query = forecasts.ForecastQuery(
            start=request.start_time.ToDatetime(tzinfo=UTC),
            end=request.end_time.ToDatetime(tzinfo=UTC),
            currency_code=request.currency_code,
            owner=request.owner,
            team=request.team,
            pipeline=request.pipeline,
        )
        async with self._app.db.read_session() as session:
            totals = await forecasts.get_forecast(session, self._app, current_principal(), query)
        return forecast_to_pb(totals, request)
