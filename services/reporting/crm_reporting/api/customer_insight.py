"""crm.reporting.v1.CustomerInsightService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.reporting.v1 import customer_insight_service_pb2_grpc as rpc_grpc
from crm_reporting.api._base import ReportingServicerBase


class CustomerInsightServicer(ReportingServicerBase, rpc_grpc.CustomerInsightServiceServicer):
    pass
