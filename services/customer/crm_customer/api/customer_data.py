"""crm.customer.v1.CustomerDataService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.customer.v1 import customer_data_service_pb2_grpc as rpc_grpc
from crm_customer.app import CustomerApp

SERVICE = "crm.customer.v1.CustomerDataService"


class CustomerDataServicer(rpc_grpc.CustomerDataServiceServicer):
    def __init__(self, app: CustomerApp) -> None:
        self._app = app
