"""No sequence of calls takes a contract to an illegal state or its money out of balance.

A hypothesis state machine drives the REAL contract service over gRPC (SQLite and PostgreSQL, real
NATS) with random Submit / Approve / Reject / Withdraw / Update / Sign / Terminate / Renew and
SetPaymentPlan / RecordPayment / VoidPayment calls by the owner (a sales rep), finance and an
admin, next to a model of the legal transitions. Every answer must be OK, FAILED_PRECONDITION,
PERMISSION_DENIED or INVALID_ARGUMENT; a call the model says is allowed must succeed and one it
says is not must be refused without changing anything. After every step the contract as the
service shows it must match the model: its status, and a balance where received + outstanding =
amount, nothing negative, and received/credit equal to what the confirmed payments add up to.

Hypothesis runs in a worker thread (its API is synchronous); every RPC is sent on the test's
event loop, where the service and the channel live.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.type import date_pb2
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from crm.common.v1.money_pb2 import Money
from crm.contract.v1 import approval_service_pb2 as apb
from crm.contract.v1 import approval_service_pb2_grpc as apb_grpc
from crm.contract.v1 import common_pb2 as common
from crm.contract.v1 import contract_service_pb2 as cpb
from crm.contract.v1 import contract_service_pb2_grpc as cpb_grpc
from crm.contract.v1 import payment_service_pb2 as ppb
from crm.contract.v1 import payment_service_pb2_grpc as ppb_grpc
from crm_shared.grpc.status import error_details

pytestmark = pytest.mark.asyncio(loop_scope="session")

S = common  # ContractStatus values
ANSWERS = {
    grpc.StatusCode.OK,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.INVALID_ARGUMENT,
}
ROUTED_TYPE = "standard"  # a workflow with one finance step applies
UNROUTED_TYPE = "service"  # no workflow: submit approves at once
# action -> (statuses it is allowed from, status it leads to; None = unchanged). The model, written
# from the API's documentation (crm/contract/v1/common.proto), not from the service's code.
LEGAL = {
    "submit": ({S.CONTRACT_STATUS_DRAFT, S.CONTRACT_STATUS_REJECTED}, None),  # target: see routed
    "approve": ({S.CONTRACT_STATUS_PENDING_APPROVAL}, S.CONTRACT_STATUS_APPROVED),
    "reject": ({S.CONTRACT_STATUS_PENDING_APPROVAL}, S.CONTRACT_STATUS_REJECTED),
    "withdraw": ({S.CONTRACT_STATUS_PENDING_APPROVAL}, S.CONTRACT_STATUS_DRAFT),
    "update": ({S.CONTRACT_STATUS_DRAFT, S.CONTRACT_STATUS_REJECTED}, S.CONTRACT_STATUS_DRAFT),
    "sign": ({S.CONTRACT_STATUS_APPROVED}, S.CONTRACT_STATUS_ACTIVE),
    "terminate": ({S.CONTRACT_STATUS_ACTIVE}, S.CONTRACT_STATUS_TERMINATED),
    "renew": ({S.CONTRACT_STATUS_ACTIVE, S.CONTRACT_STATUS_EXPIRED}, None),
    "pay": ({S.CONTRACT_STATUS_ACTIVE, S.CONTRACT_STATUS_EXPIRED}, None),
    "plan": (
        {
            S.CONTRACT_STATUS_DRAFT,
            S.CONTRACT_STATUS_PENDING_APPROVAL,
            S.CONTRACT_STATUS_APPROVED,
            S.CONTRACT_STATUS_REJECTED,
            S.CONTRACT_STATUS_ACTIVE,
        },
        None,
    ),
}


def eur(amount: int) -> Money:
    return Money(currency_code="EUR", amount_minor=amount)


def day(offset: int = 0) -> date_pb2.Date:
    value = datetime.now(UTC).date() + timedelta(days=offset)
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


@dataclass
class Answer:
    code: grpc.StatusCode
    reason: str = ""
    reply: object = None


@dataclass
class PaymentModel:
    name: str
    applied: int
    credit: int
    voided: bool = False


@dataclass
class People:
    owner: tuple
    admin: tuple
    finance: tuple


@dataclass
class Harness:
    """What the state machine's thread needs: the loop, the stubs and who calls."""

    loop: asyncio.AbstractEventLoop
    contracts: cpb_grpc.ContractServiceStub
    payments: ppb_grpc.PaymentServiceStub
    people: People
    calls: list[str] = field(default_factory=list)

    def send(self, method, request, who) -> Answer:
        async def call() -> Answer:
            try:
                return Answer(grpc.StatusCode.OK, reply=await method(request, metadata=who, timeout=30))
            except grpc.aio.AioRpcError as error:
                details = error_details(error)
                return Answer(details.code, details.reason)

        answer = asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout=60)
        assert answer.code in ANSWERS, f"{answer.code} {answer.reason} after {self.calls}"
        return answer


class ContractLife(RuleBasedStateMachine):
    harness: Harness  # set by the test before running

    def __init__(self) -> None:
        super().__init__()
        self.h = self.harness
        self.h.calls = []
        self.name = ""
        self.status = S.CONTRACT_STATUS_DRAFT
        self.routed = True
        self.amount = 0
        self.renewed = False
        self.payments: list[PaymentModel] = []
        self.plan_set = False

    # --- helpers -------------------------------------------------------------------------------
    @property
    def received(self) -> int:
        return sum(p.applied for p in self.payments if not p.voided)

    @property
    def credit(self) -> int:
        return sum(p.credit for p in self.payments if not p.voided)

    def act(self, action: str, method, request, who, *, may_refuse: bool = False) -> Answer:
        """Send; check the answer against the model; move the model on success."""
        allowed, target = LEGAL[action]
        before = self.status
        self.h.calls.append(f"{action}@{before}")
        answer = self.h.send(method, request, who)
        legal = before in allowed
        if not legal:
            assert answer.code != grpc.StatusCode.OK, f"{action} succeeded from {before}: {self.h.calls}"
            if answer.code == grpc.StatusCode.FAILED_PRECONDITION:
                assert answer.reason.startswith("CONTRACT_"), answer.reason
        elif not may_refuse:
            assert answer.code == grpc.StatusCode.OK, f"{action} refused ({answer.reason}): {self.h.calls}"
        if answer.code == grpc.StatusCode.OK and target is not None:
            self.status = target
        return answer

    # --- rules: a step the model allows now (drives contracts forward), or any call at all ------
    def allowed_now(self) -> list[str]:
        return sorted(action for action, (allowed, _) in LEGAL.items() if self.status in allowed)

    @precondition(lambda self: self.allowed_now())
    @rule(data=st.data())
    def allowed_step(self, data) -> None:
        choices = self.allowed_now()
        action = data.draw(st.sampled_from(choices), label="allowed action")
        getattr(self, action)(data)

    @precondition(lambda self: self.status == S.CONTRACT_STATUS_ACTIVE)
    @rule(data=st.data())
    def money_step(self, data) -> None:
        """Once signed, money moves more often than the contract does."""
        getattr(self, data.draw(st.sampled_from(["pay", "pay", "plan"]), label="money action"))(data)

    @rule(data=st.data())
    def any_step(self, data) -> None:
        action = data.draw(st.sampled_from(sorted(LEGAL)), label="any action")
        getattr(self, action)(data)

    # --- the contract ----------------------------------------------------------------------------
    @initialize(routed=st.booleans(), amount=st.integers(min_value=1, max_value=500_000))
    def create(self, routed: bool, amount: int) -> None:
        """Each example works on its own new contract."""
        reply = self.h.send(
            self.h.contracts.CreateContract,
            cpb.CreateContractRequest(
                contract=cpb.Contract(
                    customer=f"customers/{uuid.uuid4()}",
                    title="State machine",
                    contract_type=ROUTED_TYPE if routed else UNROUTED_TYPE,
                    amount=eur(amount),
                    start_date=day(),
                    end_date=day(365),
                )
            ),
            self.h.people.owner,
        ).reply
        assert reply is not None and reply.status == S.CONTRACT_STATUS_DRAFT
        self.name, self.routed, self.amount = reply.name, routed, amount

    def submit(self, data) -> None:
        answer = self.act(
            "submit",
            self.h.contracts.SubmitContract,
            cpb.SubmitContractRequest(name=self.name),
            self.h.people.owner,
        )
        if answer.code == grpc.StatusCode.OK:
            self.status = S.CONTRACT_STATUS_PENDING_APPROVAL if self.routed else S.CONTRACT_STATUS_APPROVED
            assert answer.reply.status == self.status

    def approve(self, data) -> None:
        by_owner = data.draw(st.booleans(), label="by_owner")
        request = cpb.ApproveContractRequest(name=self.name, comment="ok")
        if by_owner:  # never the owner's own contract
            before = self.status
            answer = self.h.send(self.h.contracts.ApproveContract, request, self.h.people.owner)
            assert answer.code in {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.FAILED_PRECONDITION}
            assert self.status == before
            return
        self.act("approve", self.h.contracts.ApproveContract, request, self.h.people.finance)

    def reject(self, data) -> None:
        request = cpb.RejectContractRequest(name=self.name, comment="price too low")
        self.act("reject", self.h.contracts.RejectContract, request, self.h.people.finance)

    def withdraw(self, data) -> None:
        request = cpb.WithdrawContractRequest(name=self.name)
        self.act("withdraw", self.h.contracts.WithdrawContract, request, self.h.people.owner)

    def update(self, data) -> None:
        amount = data.draw(st.integers(min_value=1, max_value=500_000), label="amount")
        request = cpb.UpdateContractRequest(
            contract=cpb.Contract(name=self.name, amount=eur(amount)),
            update_mask=field_mask_pb2.FieldMask(paths=["amount"]),
        )
        # An amount its payment plan no longer adds up to may be refused; without a plan, never.
        answer = self.act(
            "update", self.h.contracts.UpdateContract, request, self.h.people.owner, may_refuse=self.plan_set
        )
        if answer.code == grpc.StatusCode.OK:
            self.amount = amount

    def sign(self, data) -> None:
        self.act(
            "sign",
            self.h.contracts.SignContract,
            cpb.SignContractRequest(name=self.name),
            self.h.people.owner,
        )

    def terminate(self, data) -> None:
        request = cpb.TerminateContractRequest(name=self.name, reason="customer went away")
        self.act("terminate", self.h.contracts.TerminateContract, request, self.h.people.admin)

    def renew(self, data) -> None:
        answer = self.act(
            "renew",
            self.h.contracts.RenewContract,
            cpb.RenewContractRequest(name=self.name),
            self.h.people.owner,
            may_refuse=self.renewed,  # one renewal per contract
        )
        if self.renewed:
            assert answer.code == grpc.StatusCode.FAILED_PRECONDITION, answer
        if answer.code == grpc.StatusCode.OK:
            self.renewed = True
            assert answer.reply.renewal_of == self.name
            assert answer.reply.status == S.CONTRACT_STATUS_DRAFT

    # --- money -----------------------------------------------------------------------------------
    def plan(self, data) -> None:
        parts = data.draw(st.integers(min_value=1, max_value=3), label="installments")
        share = self.amount // parts
        amounts = [share] * (parts - 1) + [self.amount - share * (parts - 1)]
        request = ppb.SetPaymentPlanRequest(
            name=f"{self.name}/paymentPlan",
            installments=[
                ppb.Installment(due_date=day(30 * (i + 1)), amount=eur(a)) for i, a in enumerate(amounts) if a
            ],
        )
        # Paid installments must survive a new plan: with payments, a plan may be refused.
        answer = self.act(
            "plan",
            self.h.payments.SetPaymentPlan,
            request,
            self.h.people.finance,
            may_refuse=self.received > 0,
        )
        self.plan_set = self.plan_set or answer.code == grpc.StatusCode.OK

    def pay(self, data) -> None:
        # In percent of the contract amount; above 100 it is an over-payment.
        fraction = data.draw(st.integers(min_value=1, max_value=150), label="percent")
        allow_overpayment = data.draw(st.booleans(), label="allow_overpayment")
        amount = max(1, self.amount * fraction // 100)
        outstanding = self.amount - self.received
        over = amount > outstanding
        request = ppb.RecordPaymentRequest(
            payment=ppb.Payment(
                contract=self.name,
                amount=eur(amount),
                received_date=day(),
                method=common.PAYMENT_METHOD_BANK_TRANSFER,
                reference="sm",
            ),
            allow_overpayment=allow_overpayment,
        )
        answer = self.act(
            "pay",
            self.h.payments.RecordPayment,
            request,
            self.h.people.finance,
            may_refuse=over and not allow_overpayment,
        )
        if over and not allow_overpayment and self.status in LEGAL["pay"][0]:
            assert (answer.code, answer.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "OVERPAYMENT"), answer
        if answer.code == grpc.StatusCode.OK:
            payment = answer.reply
            assert payment.status == common.PAYMENT_STATUS_CONFIRMED, payment
            applied = min(amount, outstanding)
            assert payment.unapplied_amount.amount_minor == amount - applied
            self.payments.append(PaymentModel(payment.name, applied, amount - applied))

    @precondition(lambda self: any(not p.voided for p in self.payments))
    @rule(data=st.data())
    def void_payment(self, data) -> None:
        payment = data.draw(st.sampled_from([p for p in self.payments if not p.voided]))
        self.h.calls.append("void")
        answer = self.h.send(
            self.h.payments.VoidPayment,
            ppb.VoidPaymentRequest(name=payment.name, reason="bounced"),
            self.h.people.finance,
        )
        assert answer.code == grpc.StatusCode.OK, answer  # a confirmed payment can always be voided
        payment.voided = True

    # --- what the service shows ------------------------------------------------------------------
    @invariant()
    def contract_matches_the_model(self) -> None:
        contract = self.h.send(
            self.h.contracts.GetContract, cpb.GetContractRequest(name=self.name), self.h.people.admin
        ).reply
        assert contract.status == self.status, f"{contract.status} != model {self.status}: {self.h.calls}"
        balance = contract.balance
        amounts = {
            "amount": contract.amount.amount_minor,
            "received": balance.received.amount_minor,
            "outstanding": balance.outstanding.amount_minor,
            "overdue": balance.overdue.amount_minor,
            "credit": balance.credit.amount_minor,
            "pending_approval": balance.pending_approval.amount_minor,
        }
        assert all(value >= 0 for value in amounts.values()), (amounts, self.h.calls)
        assert amounts["received"] + amounts["outstanding"] == amounts["amount"] == self.amount, amounts
        assert (amounts["received"], amounts["credit"]) == (self.received, self.credit), (
            amounts,
            self.h.calls,
        )


async def finance_workflow(channel, admin) -> None:
    """Routed contracts need one finance approval; unrouted ones none."""
    await apb_grpc.ApprovalServiceStub(channel).CreateApprovalWorkflow(
        apb.CreateApprovalWorkflowRequest(
            approval_workflow=apb.ApprovalWorkflow(
                display_name="Finance review",
                target=common.APPROVAL_TARGET_CONTRACT,
                priority=1,
                condition=apb.ApprovalCondition(contract_types=[ROUTED_TYPE]),
                steps=[apb.ApprovalStep(kind=common.APPROVER_KIND_ROLE, role="finance")],
                active=True,
            )
        ),
        metadata=admin,
    )


async def test_no_sequence_of_calls_breaks_the_status_machine_or_the_balance(channel, as_user):
    admin = as_user("admin", "ada", team="")
    await finance_workflow(channel, admin)
    ContractLife.harness = Harness(
        loop=asyncio.get_running_loop(),
        contracts=cpb_grpc.ContractServiceStub(channel),
        payments=ppb_grpc.PaymentServiceStub(channel),
        people=People(
            owner=as_user("sales_rep", "bob", team="east"),
            admin=admin,
            finance=as_user("finance", "fiona", team=""),
        ),
    )
    config = settings(
        max_examples=10,
        stateful_step_count=15,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    await asyncio.to_thread(run_state_machine_as_test, ContractLife, settings=config)
