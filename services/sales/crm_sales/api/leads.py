"""crm.sales.v1.LeadService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.sales.v1 import lead_service_pb2_grpc as rpc_grpc
from crm_sales.app import SalesApp

SERVICE = "crm.sales.v1.LeadService"


class LeadServicer(rpc_grpc.LeadServiceServicer):
    def __init__(self, app: SalesApp) -> None:
        self._app = app
