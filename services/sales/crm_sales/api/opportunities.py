"""crm.sales.v1.OpportunityService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.sales.v1 import opportunity_service_pb2_grpc as rpc_grpc
from crm_sales.app import SalesApp

SERVICE = "crm.sales.v1.OpportunityService"


class OpportunityServicer(rpc_grpc.OpportunityServiceServicer):
    def __init__(self, app: SalesApp) -> None:
        self._app = app
