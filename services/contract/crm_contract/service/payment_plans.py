"""Use cases for payment plans: SetPaymentPlan, GetPaymentPlan, ListInstallments.

An installment's status is evaluated against the clock on every read (an unpaid
installment is OVERDUE from the day after its due date even before the overdue
timer has fired); the timers (crm_contract.service.installment_timers) make it
durable: they refresh the contract's `overdue` column and publish PaymentDue and
PaymentOverdue once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from crm.contract.v1 import events_pb2
from crm_contract.adapters.contract_repository import ContractRepository
from crm_contract.adapters.payment_repository import PaymentRepository, installment_filters
from crm_contract.domain import payments as rules
from crm_contract.domain.contracts import TERMINAL_STATUSES, Contract
from crm_contract.domain.payments import Installment, PlannedInstallment, utc_day
from crm_contract.service.payment_events import SUBJECT_PLAN_SET, emit_installment_paid, installment_snapshot
from crm_shared import timers
from crm_shared.access import ScopeGrant
from crm_shared.aip.etag import check_etag
from crm_shared.aip.paging import Page, clamp_page_size, query_fingerprint
from crm_shared.errors import FailedPrecondition, NotFound
from crm_shared.ids import new_id
from crm_shared.principal import Principal

PLANS = "payment_plans"
DUE_TIMER = "contract.installment.due"
OVERDUE_TIMER = "contract.installment.overdue"


@dataclass(frozen=True)
class PlanView:
    contract: Contract
    installments: list[Installment]
    version: int
    update_time: datetime | None

    @property
    def name(self) -> str:
        return f"{self.contract.name}/paymentPlan"

    @property
    def total(self) -> int:
        return sum(i.amount for i in self.installments)


@dataclass(frozen=True)
class InstallmentRow:
    installment: Installment
    contract_name: str
    customer: str
    owner: str
    team: str
    currency: str


def contract_not_found(contract_id: str) -> NotFound:
    name = f"contracts/{contract_id}"
    return NotFound(f"{name} not found", reason="CONTRACT_NOT_FOUND", metadata={"resource": name})


def plan_resource_id(contract_id: str) -> str:
    return f"{contract_id}/paymentPlan"


async def visible_contract(
    session: AsyncSession, grant: ScopeGrant, contract_id: str, *, lock: bool = False
) -> Contract:
    """The contract if it is in the caller's scope (row-locked for money changes), else NOT_FOUND."""
    contract = await ContractRepository(session).get(contract_id, grant, lock=lock)
    if contract is None:
        raise contract_not_found(contract_id)
    return contract


async def schedule_timers(uow, installment: Installment) -> None:
    """(Re)arm the reminder and overdue timers of an unpaid installment; a paid one needs none."""
    if installment.is_paid:
        await cancel_timers(uow, installment.id)
        return
    if installment.due_notified:
        await timers.cancel(uow, DUE_TIMER, installment.id)
    else:
        await timers.schedule(uow, DUE_TIMER, installment.id, installment.reminder_at())
    if installment.overdue_notified:
        await timers.cancel(uow, OVERDUE_TIMER, installment.id)
    else:
        await timers.schedule(uow, OVERDUE_TIMER, installment.id, installment.overdue_at())


async def cancel_timers(uow, installment_id: str) -> None:
    await timers.cancel(uow, DUE_TIMER, installment_id)
    await timers.cancel(uow, OVERDUE_TIMER, installment_id)


async def set_payment_plan(
    uow, deps, principal: Principal, contract_id: str, requested: Sequence[PlannedInstallment], etag: str
) -> PlanView:
    grant = deps.policy.grant(principal, PLANS, "update")
    contract = await visible_contract(uow.session, grant, contract_id, lock=True)
    if contract.status in TERMINAL_STATUSES:
        raise FailedPrecondition(
            f"{contract.name} is {contract.status.value}; its payment plan can no longer change",
            reason="CONTRACT_STATUS_INVALID",
            metadata={"resource": contract.name, "status": contract.status.value},
        )
    repo = PaymentRepository(uow.session)
    current = await repo.installments_of(contract.id)
    stored = await repo.plan_version(contract.id)
    previous_version = stored[0] if stored else None
    check_etag(
        etag, plan_resource_id(contract.id), previous_version or 0, resource=f"{contract.name}/paymentPlan"
    )
    # Installments the request names ("contracts/…/installments/{n}") keep their stored identity.
    by_name = {i.name: i.id for i in current}
    requested = [
        replace(item, existing_id=by_name.get(item.existing_id, item.existing_id)) for item in requested
    ]
    plan = rules.plan_installments(
        requested,
        current=current,
        contract_id=contract.id,
        contract_amount=contract.amount,
        currency=contract.currency,
        new_ids=[new_id() for _ in requested],
    )
    was_paid = {i.id for i in plan if i.is_paid}
    moved = rules.move_onto_plan(plan, await repo.payments_on_contract_without_plan(contract.id))
    kept = {i.id for i in plan}
    for removed in current:
        if removed.id not in kept:
            await cancel_timers(uow, removed.id)
    version = await repo.replace_plan(
        contract.id,
        plan,
        scope={
            "customer": contract.customer,
            "owner": contract.owner,
            "team": contract.team,
            "currency": contract.currency,
        },
        now=uow.now,
        previous_version=previous_version,
    )
    for payment in moved:
        await repo.save_payment(
            replace(payment, update_time=uow.now, row_version=payment.row_version + 1),
            expected_row_version=payment.row_version,
            allocations_changed=True,
        )
    today = utc_day(uow.now)
    for installment in plan:
        await schedule_timers(uow, installment)
        if installment.is_paid and installment.id not in was_paid:
            emit_installment_paid(uow, installment, contract, today)
    balanced = replace(contract, overdue=rules.overdue_amount(plan, today))
    await ContractRepository(uow.session).save_balance(balanced)
    uow.emit(
        SUBJECT_PLAN_SET,
        events_pb2.PaymentPlanSet(
            contract=contract.name,
            customer=contract.customer,
            owner=contract.owner,
            team=contract.team,
            installments=[installment_snapshot(i, contract, today) for i in plan],
        ),
        resource=contract.name,
    )
    uow.audit("payment_plan_set", f"{contract.name}/paymentPlan", ["installments"])
    return PlanView(balanced, plan, version, uow.now)


async def get_payment_plan(session: AsyncSession, deps, principal: Principal, contract_id: str) -> PlanView:
    grant = deps.policy.grant(principal, PLANS, "read")
    contract = await visible_contract(session, grant, contract_id)
    repo = PaymentRepository(session)
    stored = await repo.plan_version(contract.id)
    version, update_time = stored if stored else (0, None)
    return PlanView(contract, await repo.installments_of(contract.id), version, update_time)


async def list_installments(
    session: AsyncSession,
    deps,
    principal: Principal,
    *,
    contract_id: str | None,
    page_size: int,
    page_token: str,
    filter_text: str,
) -> Page:
    grant = deps.policy.grant(principal, PLANS, "read")
    if contract_id is not None:
        await visible_contract(session, grant, contract_id)
    today = utc_day(deps.clock.now())
    limit = clamp_page_size(page_size)
    where = installment_filters(today).compile(filter_text)
    query = query_fingerprint("installments", contract_id or "-", filter_text.strip(), principal.subject)
    after = deps.page_tokens.decode(page_token, query=query) if page_token else None
    rows = await PaymentRepository(session).list_installments(
        grant, contract_id=contract_id, where=where, after=after, limit=limit + 1
    )
    page, more = rows[:limit], len(rows) > limit
    token = ""
    if more:
        last = page[-1][0]
        token = deps.page_tokens.encode([last.due_date, last.id], query=query)
    items = [
        InstallmentRow(
            installment=i,
            contract_name=f"contracts/{i.contract_id}",
            customer=scope["customer"],
            owner=scope["owner"],
            team=scope["team"],
            currency=scope["currency"],
        )
        for i, scope in page
    ]
    return Page(items, token)
