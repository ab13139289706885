"""crm.sales.v1.ProductService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.sales.v1 import product_service_pb2_grpc as rpc_grpc
from crm_sales.app import SalesApp

SERVICE = "crm.sales.v1.ProductService"


class ProductServicer(rpc_grpc.ProductServiceServicer):
    def __init__(self, app: SalesApp) -> None:
        self._app = app
