"""crm.customer.v1.BehaviorService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.customer.v1 import behavior_service_pb2_grpc as rpc_grpc
from crm_customer.app import CustomerApp

SERVICE = "crm.customer.v1.BehaviorService"


class BehaviorServicer(rpc_grpc.BehaviorServiceServicer):
    def __init__(self, app: CustomerApp) -> None:
        self._app = app
