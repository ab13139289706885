"""crm.reporting.v1.SalesReportService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.reporting.v1 import sales_report_service_pb2 as rpc
from crm.reporting.v1 import sales_report_service_pb2_grpc as rpc_grpc
from crm_reporting.api import sales_report_mappers as m
from crm_reporting.api._base import ReportingServicerBase
from crm_reporting.service import sales_reports as reports
from crm_shared.principal import current_principal


class SalesReportServicer(ReportingServicerBase, rpc_grpc.SalesReportServiceServicer):
    async def GetFunnelReport(self, request: rpc.GetFunnelReportRequest, context) -> rpc.FunnelReport:
        principal = current_principal()
        async with self._app.db.read_session() as session:
            funnel = await reports.funnel_report(
                session, self._app, principal, request.query, request.pipeline
            )
        return m.funnel_to_pb(funnel)

    async def GetLeadConversionReport(
        self, request: rpc.GetLeadConversionReportRequest, context
    ) -> rpc.LeadConversionReport:
        principal = current_principal()
        async with self._app.db.read_session() as session:
            report = await reports.lead_conversion_report(
                session, self._app, principal, request.query, request.group_by
            )
        return m.lead_conversion_to_pb(report)

    async def GetSalesPerformanceReport(
        self, request: rpc.GetSalesPerformanceReportRequest, context
    ) -> rpc.SalesPerformanceReport:
        principal = current_principal()
        async with self._app.db.read_session() as session:
            rows = await reports.performance_report(
                session, self._app, principal, request.query, request.group_by
            )
        return m.performance_to_pb(rows)

    async def GetForecastReport(self, request: rpc.GetForecastReportRequest, context) -> rpc.ForecastReport:
        principal = current_principal()
        async with self._app.db.read_session() as session:
            rows = await reports.forecast_report(
                session, self._app, principal, request.query, request.group_by
            )
        return m.forecast_to_pb(rows)
