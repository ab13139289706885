"""crm.reporting.v1.ServiceReportService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.reporting.v1 import service_report_service_pb2 as rpc
from crm.reporting.v1 import service_report_service_pb2_grpc as rpc_grpc
from crm_reporting.api._base import ReportingServicerBase
from crm_reporting.domain.service_metrics import ServiceStats
from crm_reporting.service import service_reports as uc
from crm_shared.principal import current_principal


def stats_to_pb(s: ServiceStats) -> rpc.ServiceStats:
    return rpc.ServiceStats(
        tickets_created=s.tickets_created,
        tickets_resolved=s.tickets_resolved,
        backlog=s.backlog,
        first_response_sla_met_bp=s.first_response_sla_met_bp,
        resolution_sla_met_bp=s.resolution_sla_met_bp,
        sla_breaches=s.sla_breaches,
        average_first_response_seconds=s.average_first_response_seconds,
        median_first_response_seconds=s.median_first_response_seconds,
        average_resolution_seconds=s.average_resolution_seconds,
        csat_responses=s.csat_responses,
        csat_average=s.csat_average,
        csat_satisfied_bp=s.csat_satisfied_bp,
        first_contact_resolution_bp=s.first_contact_resolution_bp,
    )


class ServiceReportServicer(ReportingServicerBase, rpc_grpc.ServiceReportServiceServicer):
    async def GetServiceReport(self, request: rpc.GetServiceReportRequest, context) -> rpc.ServiceReport:
        principal = current_principal()
        query = request.query if request.HasField("query") else None
        async with self._app.db.read_session() as session:
            report = await uc.service_report(session, self._app, principal, query, group_by=request.group_by)
        return rpc.ServiceReport(
            total=stats_to_pb(report.total),
            rows=[rpc.ServiceRow(key=key, stats=stats_to_pb(stats)) for key, stats in report.rows],
        )
