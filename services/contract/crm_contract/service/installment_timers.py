"""PaymentDue reminders and PaymentOverdue of installments (durable timers).

Kinds, keyed by installment id: "contract.installment.due" at due_date -
remind_before_days (00:00 UTC) and "contract.installment.overdue" at due_date + 1
day (00:00 UTC), scheduled by SetPaymentPlan and re-armed when a void reopens an
installment. A handler re-reads the installment under the contract's row lock and
publishes only when it is still unpaid and not yet notified for this due date, so
each event goes out once however often a timer fires.
"""

from __future__ import annotations

from crm.contract.v1 import events_pb2
from crm_contract.adapters.contract_repository import ContractRepository
from crm_contract.adapters.payment_repository import PaymentRepository
from crm_contract.domain import payments as rules
from crm_contract.domain.payments import utc_day
from crm_contract.service.payment_events import (
    SUBJECT_PAYMENT_DUE,
    SUBJECT_PAYMENT_OVERDUE,
    installment_snapshot,
)
from crm_contract.service.payment_plans import DUE_TIMER, OVERDUE_TIMER


async def _locked_installment(uow, installment_id: str):
    repo = PaymentRepository(uow.session)
    found = await repo.get_installment(installment_id)
    if found is None:
        return None
    contract = await ContractRepository(uow.session).get(found[0].contract_id, lock=True)
    if contract is None:
        return None
    # Read again under the contract's lock: a payment may have committed meanwhile.
    again = await repo.get_installment(installment_id)
    return None if again is None else (contract, again[0])


async def remind_due(uow, installment_id: str) -> None:
    found = await _locked_installment(uow, installment_id)
    if found is None:
        return
    contract, installment = found
    today = utc_day(uow.now)
    if installment.is_paid or installment.due_notified or installment.is_past_due(today):
        return  # paid, already reminded, or too late for a reminder (the overdue notice takes over)
    installment.due_notified = True
    await PaymentRepository(uow.session).save_installment_progress([installment])
    uow.emit(
        SUBJECT_PAYMENT_DUE,
        events_pb2.PaymentDue(
            installment=installment_snapshot(installment, contract, today),
            days_until_due=max((installment.due_date - today).days, 0),
        ),
        resource=installment.name,
    )


async def mark_overdue(uow, installment_id: str) -> None:
    found = await _locked_installment(uow, installment_id)
    if found is None:
        return
    contract, installment = found
    today = utc_day(uow.now)
    if installment.is_paid or installment.overdue_notified or not installment.is_past_due(today):
        return
    installment.overdue_notified = True
    repo = PaymentRepository(uow.session)
    await repo.save_installment_progress([installment])
    # The durable side of lazy overdue: the contract's `overdue` column catches up now.
    plan = await repo.installments_of(contract.id)
    contract.overdue = rules.overdue_amount(plan, today)
    await ContractRepository(uow.session).save_balance(contract)
    uow.emit(
        SUBJECT_PAYMENT_OVERDUE,
        events_pb2.PaymentOverdue(installment=installment_snapshot(installment, contract, today)),
        resource=installment.name,
    )


def timer_handlers(app) -> dict:
    async def due(uow, timer) -> None:
        await remind_due(uow, timer.key)

    async def overdue(uow, timer) -> None:
        await mark_overdue(uow, timer.key)

    return {DUE_TIMER: due, OVERDUE_TIMER: overdue}
