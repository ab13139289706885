"""crm.contract.v1.ReceivableService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.contract.v1 import receivable_service_pb2_grpc as rpc_grpc
from crm_contract.api._base import ContractServicerBase


class ReceivableServicer(ContractServicerBase, rpc_grpc.ReceivableServiceServicer):
    pass
