"""crm.contract.v1.ContractService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.contract.v1 import contract_service_pb2_grpc as rpc_grpc
from crm_contract.api._base import ContractServicerBase
from crm_contract.api.contract_approvals import ContractApprovalRpcs


class ContractServicer(ContractApprovalRpcs, ContractServicerBase, rpc_grpc.ContractServiceServicer):
    """Standard methods, Sign/Terminate/Renew here; Submit/Approve/Reject/Withdraw in ContractApprovalRpcs."""
