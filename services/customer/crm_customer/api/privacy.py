"""crm.customer.v1.PrivacyService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.customer.v1 import privacy_service_pb2_grpc as rpc_grpc
from crm_customer.app import CustomerApp

SERVICE = "crm.customer.v1.PrivacyService"


class PrivacyServicer(rpc_grpc.PrivacyServiceServicer):
    def __init__(self, app: CustomerApp) -> None:
        self._app = app
