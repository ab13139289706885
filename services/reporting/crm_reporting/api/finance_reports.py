"""crm.reporting.v1.FinanceReportService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.reporting.v1 import finance_report_service_pb2 as rpc
from crm.reporting.v1 import finance_report_service_pb2_grpc as rpc_grpc
from crm_reporting.api import finance_report_mappers as m
from crm_reporting.api._base import ReportingServicerBase
from crm_reporting.service import finance_reports as uc
from crm_shared.principal import current_principal


class FinanceReportServicer(ReportingServicerBase, rpc_grpc.FinanceReportServiceServicer):
    async def GetReceivablesReport(
        self, request: rpc.GetReceivablesReportRequest, context
    ) -> rpc.ReceivablesReport:
        as_of = m.date_from_pb(request.as_of, field="as_of") if request.HasField("as_of") else None
        async with self._app.db.read_session() as session:
            result = await uc.receivables_report(
                session,
                self._app,
                current_principal(),
                request.query if request.HasField("query") else None,
                as_of=as_of,
                group_by=m.GROUPING[request.group_by],
                overdue_limit=request.overdue_limit,
            )
        return m.receivables_report(result)
