"""crm.contract.v1.ContractService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from google.protobuf import empty_pb2

from crm.contract.v1 import contract_service_pb2 as rpc
from crm.contract.v1 import contract_service_pb2_grpc as rpc_grpc
from crm_contract.api import contract_mappers as m
from crm_contract.api._base import ContractServicerBase
from crm_contract.api.contract_approvals import ContractApprovalRpcs
from crm_contract.service import contracts as uc
from crm_shared.principal import current_principal

SERVICE = "crm.contract.v1.ContractService"


class ContractServicer(ContractApprovalRpcs, ContractServicerBase, rpc_grpc.ContractServiceServicer):
    """Standard methods, Sign/Terminate/Renew here; Submit/Approve/Reject/Withdraw in ContractApprovalRpcs."""

    async def GetContract(self, request: rpc.GetContractRequest, context) -> rpc.Contract:
        async with self._app.db.read_session() as session:
            contract = await uc.get_contract(
                session, self._app, current_principal(), m.contract_id(request.name)
            )
        return m.contract_to_pb(contract)

    async def ListContracts(self, request: rpc.ListContractsRequest, context) -> rpc.ListContractsResponse:
        async with self._app.db.read_session() as session:
            page = await uc.list_contracts(
                session,
                self._app,
                current_principal(),
                page_size=request.page_size,
                page_token=request.page_token,
                filter_text=request.filter,
                order_by=request.order_by,
            )
        return rpc.ListContractsResponse(
            contracts=[m.contract_to_pb(c) for c in page.items], next_page_token=page.next_page_token
        )

    async def CreateContract(self, request: rpc.CreateContractRequest, context) -> rpc.Contract:
        principal, data = current_principal(), m.contract_input(request.contract)

        async def run(uow):
            return m.contract_to_pb(await uc.create_contract(uow, self._app, principal, data))

        return await self._once(f"/{SERVICE}/CreateContract", request, run=run, response_type=rpc.Contract)

    async def UpdateContract(self, request: rpc.UpdateContractRequest, context) -> rpc.Contract:
        contract_id = m.contract_id(request.contract.name, field="contract.name")
        principal, data = current_principal(), m.contract_input(request.contract)
        contract = await self._write(
            lambda uow: uc.update_contract(
                uow,
                self._app,
                principal,
                contract_id,
                data,
                list(request.update_mask.paths),
                request.contract.etag,
            )
        )
        return m.contract_to_pb(contract)

    async def DeleteContract(self, request: rpc.DeleteContractRequest, context) -> empty_pb2.Empty:
        contract_id, principal = m.contract_id(request.name), current_principal()
        await self._write(
            lambda uow: uc.delete_contract(uow, self._app, principal, contract_id, request.etag)
        )
        return empty_pb2.Empty()

    async def SignContract(self, request: rpc.SignContractRequest, context) -> rpc.Contract:
        contract_id, principal = m.contract_id(request.name), current_principal()
        signed_date = m.optional_date(request, "signed_date", field="signed_date")

        async def run(uow):
            contract = await uc.sign_contract(
                uow,
                self._app,
                principal,
                contract_id,
                etag=request.etag,
                signed_date=signed_date,
                customer_signer=request.customer_signer,
                company_signer=request.company_signer,
            )
            return m.contract_to_pb(contract)

        return await self._once(f"/{SERVICE}/SignContract", request, run=run, response_type=rpc.Contract)

    async def TerminateContract(self, request: rpc.TerminateContractRequest, context) -> rpc.Contract:
        contract_id, principal = m.contract_id(request.name), current_principal()

        async def run(uow):
            contract = await uc.terminate_contract(
                uow, self._app, principal, contract_id, etag=request.etag, reason=request.reason
            )
            return m.contract_to_pb(contract)

        return await self._once(f"/{SERVICE}/TerminateContract", request, run=run, response_type=rpc.Contract)

    async def RenewContract(self, request: rpc.RenewContractRequest, context) -> rpc.Contract:
        contract_id, principal = m.contract_id(request.name), current_principal()
        start_date = m.optional_date(request, "start_date", field="start_date")
        end_date = m.optional_date(request, "end_date", field="end_date")
        amount = request.amount.amount_minor if request.HasField("amount") else None
        currency = request.amount.currency_code

        async def run(uow):
            contract = await uc.renew_contract(
                uow,
                self._app,
                principal,
                contract_id,
                start_date=start_date,
                end_date=end_date,
                amount=amount,
                amount_currency=currency,
            )
            return m.contract_to_pb(contract)

        return await self._once(f"/{SERVICE}/RenewContract", request, run=run, response_type=rpc.Contract)
