"""crm.customer.v1.PoolService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.customer.v1 import pool_service_pb2_grpc as rpc_grpc
from crm_customer.app import CustomerApp

SERVICE = "crm.customer.v1.PoolService"


class PoolServicer(rpc_grpc.PoolServiceServicer):
    def __init__(self, app: CustomerApp) -> None:
        self._app = app
