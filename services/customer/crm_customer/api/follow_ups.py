"""crm.customer.v1.FollowUpService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.customer.v1 import follow_up_service_pb2_grpc as rpc_grpc
from crm_customer.app import CustomerApp

SERVICE = "crm.customer.v1.FollowUpService"


class FollowUpServicer(rpc_grpc.FollowUpServiceServicer):
    def __init__(self, app: CustomerApp) -> None:
        self._app = app
