"""crm.contract.v1.PaymentService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.contract.v1 import payment_service_pb2 as rpc
from crm.contract.v1 import payment_service_pb2_grpc as rpc_grpc
from crm_contract.api import payment_mappers as m
from crm_contract.api._base import ContractServicerBase
from crm_contract.domain.payments import utc_day
from crm_contract.service import payment_plans, payments
from crm_shared.principal import current_principal

SERVICE = "crm.contract.v1.PaymentService"


class PaymentServicer(ContractServicerBase, rpc_grpc.PaymentServiceServicer):
    def _today(self):
        return utc_day(self._app.clock.now())

    async def SetPaymentPlan(self, request: rpc.SetPaymentPlanRequest, context) -> rpc.PaymentPlan:
        contract_id = m.id_from(request.name, "contracts", suffix="/paymentPlan")
        planned = m.planned_installments(request)
        principal = current_principal()

        async def run(uow):
            plan = await payment_plans.set_payment_plan(
                uow, self._app, principal, contract_id, planned, request.etag
            )
            return m.plan_to_pb(plan, utc_day(uow.now))

        return await self._once(f"/{SERVICE}/SetPaymentPlan", request, run=run, response_type=rpc.PaymentPlan)

    async def GetPaymentPlan(self, request: rpc.GetPaymentPlanRequest, context) -> rpc.PaymentPlan:
        contract_id = m.id_from(request.name, "contracts", suffix="/paymentPlan")
        async with self._app.db.read_session() as session:
            plan = await payment_plans.get_payment_plan(session, self._app, current_principal(), contract_id)
        return m.plan_to_pb(plan, self._today())

    async def ListInstallments(
        self, request: rpc.ListInstallmentsRequest, context
    ) -> rpc.ListInstallmentsResponse:
        contract_id = (
            None
            if request.parent == "contracts/-"
            else m.id_from(request.parent, "contracts", field="parent")
        )
        async with self._app.db.read_session() as session:
            page = await payment_plans.list_installments(
                session,
                self._app,
                current_principal(),
                contract_id=contract_id,
                page_size=request.page_size,
                page_token=request.page_token,
                filter_text=request.filter,
            )
        today = self._today()
        return rpc.ListInstallmentsResponse(
            installments=[m.installment_row_to_pb(row, today) for row in page.items],
            next_page_token=page.next_page_token,
        )

    async def RecordPayment(self, request: rpc.RecordPaymentRequest, context) -> rpc.Payment:
        data = m.payment_input(request.payment)
        principal = current_principal()

        async def run(uow):
            view = await payments.record_payment(
                uow, self._app, principal, data, allow_overpayment=request.allow_overpayment
            )
            return m.payment_to_pb(view)

        return await self._once(f"/{SERVICE}/RecordPayment", request, run=run, response_type=rpc.Payment)

    async def GetPayment(self, request: rpc.GetPaymentRequest, context) -> rpc.Payment:
        async with self._app.db.read_session() as session:
            view = await payments.get_payment(
                session, self._app, current_principal(), m.id_from(request.name, "payments")
            )
        return m.payment_to_pb(view)

    async def ListPayments(self, request: rpc.ListPaymentsRequest, context) -> rpc.ListPaymentsResponse:
        async with self._app.db.read_session() as session:
            page = await payments.list_payments(
                session,
                self._app,
                current_principal(),
                page_size=request.page_size,
                page_token=request.page_token,
                filter_text=request.filter,
                order_by=request.order_by,
            )
        return rpc.ListPaymentsResponse(
            payments=[m.payment_to_pb(view) for view in page.items], next_page_token=page.next_page_token
        )

    async def _decide(self, method: str, request, *, approve: bool) -> rpc.Payment:
        payment_id, principal = m.id_from(request.name, "payments"), current_principal()

        async def run(uow):
            view = await payments.decide_payment(
                uow, self._app, principal, payment_id, approve=approve, comment=request.comment
            )
            return m.payment_to_pb(view)

        return await self._once(f"/{SERVICE}/{method}", request, run=run, response_type=rpc.Payment)

    async def ApprovePayment(self, request: rpc.ApprovePaymentRequest, context) -> rpc.Payment:
        return await self._decide("ApprovePayment", request, approve=True)

    async def RejectPayment(self, request: rpc.RejectPaymentRequest, context) -> rpc.Payment:
        return await self._decide("RejectPayment", request, approve=False)

    async def VoidPayment(self, request: rpc.VoidPaymentRequest, context) -> rpc.Payment:
        payment_id, principal = m.id_from(request.name, "payments"), current_principal()

        async def run(uow):
            view = await payments.void_payment(
                uow, self._app, principal, payment_id, request.etag, request.reason
            )
            return m.payment_to_pb(view)

        return await self._once(f"/{SERVICE}/VoidPayment", request, run=run, response_type=rpc.Payment)
