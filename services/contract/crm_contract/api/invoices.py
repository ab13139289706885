"""crm.contract.v1.InvoiceService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.contract.v1 import invoice_service_pb2 as rpc
from crm.contract.v1 import invoice_service_pb2_grpc as rpc_grpc
from crm_contract.adapters.payment_repository import PaymentRepository
from crm_contract.api import payment_mappers as m
from crm_contract.api._base import ContractServicerBase
from crm_contract.api.contract_mappers import optional_date
from crm_contract.service import invoices as uc
from crm_shared.principal import current_principal

SERVICE = "crm.contract.v1.InvoiceService"


async def _to_pb(session, invoice) -> rpc.Invoice:
    # Installment names carry their current number (a new plan renumbers them).
    installments = await PaymentRepository(session).installments_by_id(invoice.installment_ids)
    return m.invoice_to_pb(invoice, {i.id: i.name for i in installments.values()})


class InvoiceServicer(ContractServicerBase, rpc_grpc.InvoiceServiceServicer):
    async def CreateInvoice(self, request: rpc.CreateInvoiceRequest, context) -> rpc.Invoice:
        data, principal = m.invoice_input(request.invoice), current_principal()

        async def run(uow):
            return await _to_pb(uow.session, await uc.create_invoice(uow, self._app, principal, data))

        return await self._once(f"/{SERVICE}/CreateInvoice", request, run=run, response_type=rpc.Invoice)

    async def GetInvoice(self, request: rpc.GetInvoiceRequest, context) -> rpc.Invoice:
        async with self._app.db.read_session() as session:
            invoice = await uc.get_invoice(
                session, self._app, current_principal(), m.id_from(request.name, "invoices")
            )
            return await _to_pb(session, invoice)

    async def ListInvoices(self, request: rpc.ListInvoicesRequest, context) -> rpc.ListInvoicesResponse:
        async with self._app.db.read_session() as session:
            page = await uc.list_invoices(
                session,
                self._app,
                current_principal(),
                page_size=request.page_size,
                page_token=request.page_token,
                filter_text=request.filter,
            )
            return rpc.ListInvoicesResponse(
                invoices=[await _to_pb(session, i) for i in page.items], next_page_token=page.next_page_token
            )

    async def IssueInvoice(self, request: rpc.IssueInvoiceRequest, context) -> rpc.Invoice:
        invoice_id, principal = m.id_from(request.name, "invoices"), current_principal()
        issued_date = optional_date(request, "issued_date", field="issued_date")

        async def run(uow):
            invoice = await uc.issue_invoice(uow, self._app, principal, invoice_id, request.etag, issued_date)
            return await _to_pb(uow.session, invoice)

        return await self._once(f"/{SERVICE}/IssueInvoice", request, run=run, response_type=rpc.Invoice)

    async def VoidInvoice(self, request: rpc.VoidInvoiceRequest, context) -> rpc.Invoice:
        invoice_id, principal = m.id_from(request.name, "invoices"), current_principal()

        async def run(uow):
            invoice = await uc.void_invoice(
                uow, self._app, principal, invoice_id, request.etag, request.reason
            )
            return await _to_pb(uow.session, invoice)

        return await self._once(f"/{SERVICE}/VoidInvoice", request, run=run, response_type=rpc.Invoice)
