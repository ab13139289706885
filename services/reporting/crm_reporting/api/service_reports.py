"""crm.reporting.v1.ServiceReportService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.reporting.v1 import service_report_service_pb2_grpc as rpc_grpc
from crm_reporting.api._base import ReportingServicerBase


class ServiceReportServicer(ReportingServicerBase, rpc_grpc.ServiceReportServiceServicer):
    pass
