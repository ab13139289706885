"""crm.contract.v1.ReceivableService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.contract.v1 import receivable_service_pb2 as rpc
from crm.contract.v1 import receivable_service_pb2_grpc as rpc_grpc
from crm_contract.api import payment_mappers as m
from crm_contract.api._base import ContractServicerBase
from crm_contract.api.contract_mappers import optional_date
from crm_contract.service import receivables as uc
from crm_contract.service.contract_snapshots import date_pb
from crm_shared.principal import current_principal

GROUPING = {
    rpc.RECEIVABLE_GROUPING_UNSPECIFIED: "owner",
    rpc.RECEIVABLE_GROUPING_OWNER: "owner",
    rpc.RECEIVABLE_GROUPING_TEAM: "team",
    rpc.RECEIVABLE_GROUPING_CUSTOMER: "customer",
    rpc.RECEIVABLE_GROUPING_CONTRACT: "contract",
}


class ReceivableServicer(ContractServicerBase, rpc_grpc.ReceivableServiceServicer):
    async def ListReceivables(
        self, request: rpc.ListReceivablesRequest, context
    ) -> rpc.ListReceivablesResponse:
        async with self._app.db.read_session() as session:
            result = await uc.list_receivables(
                session,
                self._app,
                current_principal(),
                group_by=GROUPING[request.group_by],
                as_of=optional_date(request, "as_of", field="as_of"),
                filter_text=request.filter,
                page_size=request.page_size,
                page_token=request.page_token,
            )
        return rpc.ListReceivablesResponse(
            groups=[m.receivable_group_to_pb(g) for g in result.groups],
            totals=[m.receivable_group_to_pb(t) for t in result.totals],
            as_of=date_pb(result.as_of),
            next_page_token=result.next_page_token,
        )
