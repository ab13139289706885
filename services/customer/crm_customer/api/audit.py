"""crm.customer.v1.AuditService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.customer.v1 import audit_service_pb2_grpc as rpc_grpc
from crm_customer.app import CustomerApp

SERVICE = "crm.customer.v1.AuditService"


class AuditServicer(rpc_grpc.AuditServiceServicer):
    def __init__(self, app: CustomerApp) -> None:
        self._app = app
