"""crm.reporting.v1.FinanceReportService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.reporting.v1 import finance_report_service_pb2_grpc as rpc_grpc
from crm_reporting.api._base import ReportingServicerBase


class FinanceReportServicer(ReportingServicerBase, rpc_grpc.FinanceReportServiceServicer):
    pass
