"""Pure payment rules: allocation, installment status, the contract's balance, plans and aging.

The property test plays random plans and random sequences of payments (automatic or explicit,
with or without allow_overpayment) and voids through the same rules the service uses, and
checks after every step: no amount is negative, received + outstanding == amount, the
installments' paid amounts add up to received, and over-payment only ever becomes credit.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_contract.domain import payments as rules
from crm_contract.domain.payments import (
    AgingBucket,
    AllocationRequest,
    Installment,
    InstallmentStatus,
    PlannedInstallment,
)
from crm_shared.errors import InvalidArgument

START = date(2026, 1, 1)


def plan_of(amounts: list[int], gaps: list[int]) -> list[Installment]:
    due, plan = START, []
    for number, (amount, gap) in enumerate(zip(amounts, gaps, strict=True), start=1):
        due += timedelta(days=gap)
        plan.append(Installment(id=f"i{number}", contract_id="c", number=number, due_date=due, amount=amount))
    return plan


operations = st.lists(
    st.one_of(
        st.tuples(st.just("pay"), st.integers(1, 3000), st.booleans(), st.booleans(), st.integers(0, 9)),
        st.tuples(st.just("void"), st.integers(0, 20)),
    ),
    max_size=25,
)


@settings(max_examples=100, deadline=None)
@given(
    amounts=st.lists(st.integers(1, 1000), min_size=0, max_size=5),
    data=st.data(),
    ops=operations,
)
def test_no_sequence_of_payments_and_voids_breaks_the_balance(amounts, data, ops):
    gaps = data.draw(st.lists(st.integers(0, 40), min_size=len(amounts), max_size=len(amounts)))
    plan = plan_of(amounts, gaps)
    contract_amount = sum(amounts) if plan else data.draw(st.integers(1, 3000))
    received = credit = 0
    confirmed: list[rules.AllocationResult] = []
    for op in ops:
        if op[0] == "pay":
            _, amount, allow, explicit, pick = op
            requested = []
            if explicit and plan:
                target = plan[pick % len(plan)]
                requested = [AllocationRequest(target.id, min(amount, max(target.outstanding, 1)), "a[0]")]
            try:
                result = rules.allocate(
                    amount,
                    installments=plan,
                    contract_outstanding=contract_amount - received,
                    requested=requested,
                    allow_overpayment=allow,
                )
            except InvalidArgument as refused:
                # Refused whole: either over the outstanding without consent or a bad allocation.
                assert refused.reason == "OVERPAYMENT" or requested
                if refused.reason == "OVERPAYMENT":
                    assert amount > contract_amount - received and not allow
                continue
            assert result.applied + result.unapplied == amount
            assert result.unapplied == max(amount - (contract_amount - received), 0)
            assert not result.unapplied or allow
            rules.apply_allocations(plan, result.allocations, received_date=START, sign=+1)
            received += result.applied
            credit += result.unapplied
            confirmed.append(result)
        elif confirmed:
            result = confirmed.pop(op[1] % len(confirmed))
            rules.apply_allocations(plan, result.allocations, received_date=START, sign=-1)
            received -= result.applied
            credit -= result.unapplied

        balance = rules.Balance(contract_amount, received, credit, 0, rules.overdue_amount(plan, START))
        balance.check()  # nothing negative, overdue within outstanding
        assert balance.received + balance.outstanding == contract_amount
        assert all(0 <= i.paid_amount <= i.amount for i in plan)
        if plan:
            assert sum(i.paid_amount for i in plan) == received
        assert credit == sum(r.unapplied for r in confirmed)


def test_automatic_allocation_fills_the_oldest_due_first():
    plan = plan_of([100, 200, 300], [30, 0, 30])  # i1 and i2 due the same day: by number
    result = rules.allocate(250, installments=plan, contract_outstanding=600, allow_overpayment=False)
    assert [(a.installment_id, a.amount) for a in result.allocations] == [("i1", 100), ("i2", 150)]


def test_explicit_allocations_above_the_open_amount_or_the_payment_are_refused():
    plan = plan_of([100, 200], [10, 10])
    with pytest.raises(InvalidArgument) as over_installment:
        rules.allocate(
            150,
            installments=plan,
            contract_outstanding=300,
            requested=[AllocationRequest("i1", 150, "payment.allocations[0]")],
            allow_overpayment=False,
        )
    assert [v.field for v in over_installment.value.field_violations] == ["payment.allocations[0].amount"]
    with pytest.raises(InvalidArgument) as over_payment:
        rules.allocate(
            50,
            installments=plan,
            contract_outstanding=300,
            requested=[AllocationRequest("i2", 80, "payment.allocations[0]")],
            allow_overpayment=False,
        )
    assert [v.field for v in over_payment.value.field_violations] == ["payment.allocations"]


def test_status_turns_overdue_the_day_after_the_due_date_until_fully_paid():
    installment = Installment(id="i", contract_id="c", number=1, due_date=date(2026, 3, 31), amount=100)
    assert installment.status(date(2026, 3, 31)) is InstallmentStatus.PENDING
    assert installment.status(date(2026, 4, 1)) is InstallmentStatus.OVERDUE
    assert installment.days_overdue(date(2026, 4, 11)) == 11
    installment.paid_amount = 40
    assert installment.status(date(2026, 3, 1)) is InstallmentStatus.PARTIALLY_PAID
    assert installment.status(date(2026, 4, 1)) is InstallmentStatus.OVERDUE
    installment.paid_amount = 100
    assert (
        installment.status(date(2026, 5, 1)) is InstallmentStatus.PAID
        and installment.days_overdue(date(2026, 5, 1)) == 0
    )
    assert installment.reminder_at().isoformat() == "2026-03-24T00:00:00+00:00"
    assert installment.overdue_at().isoformat() == "2026-04-01T00:00:00+00:00"


@pytest.mark.parametrize(
    ("days_past_due", "bucket"),
    [
        (-5, AgingBucket.CURRENT),
        (0, AgingBucket.CURRENT),
        (1, AgingBucket.DAYS_1_30),
        (30, AgingBucket.DAYS_1_30),
        (31, AgingBucket.DAYS_31_60),
        (60, AgingBucket.DAYS_31_60),
        (61, AgingBucket.DAYS_61_90),
        (90, AgingBucket.DAYS_61_90),
        (91, AgingBucket.DAYS_OVER_90),
    ],
)
def test_aging_buckets_count_whole_days_past_due(days_past_due, bucket):
    as_of = date(2026, 6, 30)
    assert rules.aging_bucket(as_of - timedelta(days=days_past_due), as_of) is bucket


def test_a_new_plan_is_renumbered_by_due_date_and_keeps_paid_installments():
    current = plan_of([100, 100], [10, 10])
    current[0].paid_amount = 60
    plan = rules.plan_installments(
        [
            PlannedInstallment(date(2026, 3, 1), 150, "EUR", existing_id="i1"),
            PlannedInstallment(date(2026, 2, 1), 50, "EUR"),
        ],
        current=current,
        contract_id="c",
        contract_amount=200,
        currency="EUR",
        new_ids=["n1", "n2"],
    )
    assert [(i.id, i.number, i.paid_amount) for i in plan] == [("n1", 1, 0), ("i1", 2, 60)]
    with pytest.raises(InvalidArgument):
        rules.plan_installments(
            [PlannedInstallment(date(2026, 3, 1), 200, "EUR")],
            current=current,
            contract_id="c",
            contract_amount=200,
            currency="EUR",
            new_ids=["n1"],
        )
