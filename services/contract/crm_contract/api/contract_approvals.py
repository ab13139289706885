"""SubmitContract, ApproveContract, RejectContract, WithdrawContract (mixed into ContractServicer)."""

from __future__ import annotations

from crm.contract.v1 import contract_service_pb2 as rpc
from crm_contract.api.contract_mappers import contract_id, contract_to_pb
from crm_contract.service import contract_approvals as uc
from crm_shared.principal import current_principal

SERVICE = "crm.contract.v1.ContractService"


class ContractApprovalRpcs:
    """Needs ContractServicerBase's `_app` and `_once` (ContractServicer inherits both)."""

    async def SubmitContract(self, request: rpc.SubmitContractRequest, context) -> rpc.Contract:
        target, principal = contract_id(request.name), current_principal()

        async def run(uow):
            return contract_to_pb(
                await uc.submit_contract(
                    uow, self._app, principal, target, etag=request.etag, comment=request.comment
                )
            )

        return await self._once(f"/{SERVICE}/SubmitContract", request, run=run, response_type=rpc.Contract)

    async def ApproveContract(self, request: rpc.ApproveContractRequest, context) -> rpc.Contract:
        target, principal = contract_id(request.name), current_principal()

        async def run(uow):
            return contract_to_pb(
                await uc.approve_contract(uow, self._app, principal, target, comment=request.comment)
            )

        return await self._once(f"/{SERVICE}/ApproveContract", request, run=run, response_type=rpc.Contract)

    async def RejectContract(self, request: rpc.RejectContractRequest, context) -> rpc.Contract:
        target, principal = contract_id(request.name), current_principal()

        async def run(uow):
            return contract_to_pb(
                await uc.reject_contract(uow, self._app, principal, target, comment=request.comment)
            )

        return await self._once(f"/{SERVICE}/RejectContract", request, run=run, response_type=rpc.Contract)

    async def WithdrawContract(self, request: rpc.WithdrawContractRequest, context) -> rpc.Contract:
        target, principal = contract_id(request.name), current_principal()

        async def run(uow):
            return contract_to_pb(
                await uc.withdraw_contract(uow, self._app, principal, target, comment=request.comment)
            )

        return await self._once(f"/{SERVICE}/WithdrawContract", request, run=run, response_type=rpc.Contract)
