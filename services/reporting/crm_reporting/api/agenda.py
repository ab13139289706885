"""crm.reporting.v1.AgendaService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.reporting.v1 import agenda_service_pb2_grpc as rpc_grpc
from crm_reporting.api._base import ReportingServicerBase


class AgendaServicer(ReportingServicerBase, rpc_grpc.AgendaServiceServicer):
    pass
