"""crm.contract.v1.InvoiceService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.contract.v1 import invoice_service_pb2_grpc as rpc_grpc
from crm_contract.api._base import ContractServicerBase


class InvoiceServicer(ContractServicerBase, rpc_grpc.InvoiceServiceServicer):
    pass
