"""Payment plans and payments: pure rules (allocation, installment status, balances, aging).

Every amount is an integer in minor units of the contract's currency. Dates are
calendar dates in UTC: an installment due on D is overdue from D+1 00:00Z, so
"today" (the UTC date of the clock) > D.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta

from crm_shared.errors import FailedPrecondition, InvalidArgument, Violations

DEFAULT_REMIND_BEFORE_DAYS = 7
MAX_INSTALLMENTS = 120


class InstallmentStatus(enum.Enum):
    PENDING = "pending"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    OVERDUE = "overdue"


class PaymentStatus(enum.Enum):
    PENDING_APPROVAL = "pending_approval"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    VOIDED = "voided"


class PaymentMethod(enum.Enum):
    UNSPECIFIED = "unspecified"
    BANK_TRANSFER = "bank_transfer"
    CASH = "cash"
    CHEQUE = "cheque"
    CARD = "card"
    ONLINE = "online"
    OTHER = "other"


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def start_of_day(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=UTC)


# --- installments ---------------------------------------------------------------------------------


@dataclass
class Installment:
    id: str
    contract_id: str
    number: int
    due_date: date
    amount: int
    remind_before_days: int = DEFAULT_REMIND_BEFORE_DAYS
    paid_amount: int = 0
    paid_date: date | None = None
    note: str = ""
    # Set by the durable timers so PaymentDue / PaymentOverdue are published once per due date.
    due_notified: bool = False
    overdue_notified: bool = False

    @property
    def name(self) -> str:
        return f"contracts/{self.contract_id}/installments/{self.number}"

    @property
    def outstanding(self) -> int:
        return self.amount - self.paid_amount

    @property
    def is_paid(self) -> bool:
        return self.paid_amount >= self.amount

    def is_past_due(self, today: date) -> bool:
        return today > self.due_date

    def status(self, today: date) -> InstallmentStatus:
        """Evaluated against the clock, so a read is right even before the overdue timer fired."""
        if self.is_paid:
            return InstallmentStatus.PAID
        if self.is_past_due(today):
            return InstallmentStatus.OVERDUE
        if self.paid_amount > 0:
            return InstallmentStatus.PARTIALLY_PAID
        return InstallmentStatus.PENDING

    def days_overdue(self, today: date) -> int:
        if self.is_paid or not self.is_past_due(today):
            return 0
        return (today - self.due_date).days

    def reminder_at(self) -> datetime:
        return start_of_day(self.due_date - timedelta(days=self.remind_before_days))

    def overdue_at(self) -> datetime:
        return start_of_day(self.due_date + timedelta(days=1))


@dataclass(frozen=True)
class PlannedInstallment:
    """One installment as SetPaymentPlan gives it; `existing_id` keeps an installment already stored."""

    due_date: date | None
    amount: int
    currency: str
    remind_before_days: int = DEFAULT_REMIND_BEFORE_DAYS
    note: str = ""
    existing_id: str = ""


def plan_installments(
    requested: Sequence[PlannedInstallment],
    *,
    current: Sequence[Installment],
    contract_id: str,
    contract_amount: int,
    currency: str,
    new_ids: Sequence[str],
) -> list[Installment]:
    """The new plan: validated, numbered 1.. in due-date order, (partly) paid installments kept.

    An installment named in the request keeps its id, paid amount and paid date; one not named
    is removed, which is refused when something was paid on it (the money would vanish).
    """
    violations = Violations()
    by_id = {i.id: i for i in current}
    named: set[str] = set()
    for index, item in enumerate(requested):
        path = f"installments[{index}]"
        if item.due_date is None:
            violations.add(f"{path}.due_date", "is required")
        if item.amount <= 0:
            violations.add(f"{path}.amount", "must be positive")
        if item.currency != currency:
            violations.add(f"{path}.amount.currency_code", f"must be the contract's currency {currency}")
        if not 0 <= item.remind_before_days <= 365:
            violations.add(f"{path}.remind_before_days", "must be between 0 and 365")
        if item.existing_id:
            kept = by_id.get(item.existing_id)
            if kept is None:
                violations.add(f"{path}.name", "is not an installment of this contract's plan")
            elif item.existing_id in named:
                violations.add(f"{path}.name", "names the same installment twice")
            elif item.amount < kept.paid_amount:
                violations.add(
                    f"{path}.amount", f"must be at least the {kept.paid_amount} already paid on it"
                )
            named.add(item.existing_id)
    for kept in current:
        if kept.paid_amount > 0 and kept.id not in named:
            violations.add("installments", f"{kept.name} has payments; keep it (by name) in the new plan")
    if not 1 <= len(requested) <= MAX_INSTALLMENTS:
        violations.add("installments", f"must have 1 to {MAX_INSTALLMENTS} installments")
    total = sum(item.amount for item in requested)
    if total != contract_amount:
        violations.add(
            "installments", f"amounts add up to {total}, not the contract amount {contract_amount}"
        )
    violations.raise_if_any("the payment plan is invalid")

    fresh = iter(new_ids)
    plan: list[Installment] = []
    for item in requested:
        kept = by_id.get(item.existing_id)
        assert item.due_date is not None
        if kept is None:
            plan.append(
                Installment(
                    id=next(fresh),
                    contract_id=contract_id,
                    number=0,
                    due_date=item.due_date,
                    amount=item.amount,
                    remind_before_days=item.remind_before_days,
                    note=item.note,
                )
            )
            continue
        moved = kept.due_date != item.due_date or kept.remind_before_days != item.remind_before_days
        plan.append(
            replace(
                kept,
                due_date=item.due_date,
                amount=item.amount,
                remind_before_days=item.remind_before_days,
                note=item.note,
                # A new due date deserves a new reminder and a new overdue notice.
                due_notified=kept.due_notified and not moved,
                overdue_notified=kept.overdue_notified and kept.due_date == item.due_date,
                paid_date=kept.paid_date if item.amount <= kept.paid_amount else None,
            )
        )
    plan.sort(key=lambda i: (i.due_date, i.amount, i.id))
    for number, installment in enumerate(plan, start=1):
        installment.number = number
    return plan


# --- allocation -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Allocation:
    """`installment_id` is empty when the payment is applied to a contract without a plan."""

    installment_id: str
    amount: int


@dataclass(frozen=True)
class AllocationRequest:
    installment_id: str  # resolved from the installment name; "" = the contract as a whole
    amount: int
    path: str  # the request field, for error messages


@dataclass(frozen=True)
class AllocationResult:
    allocations: list[Allocation]
    unapplied: int

    @property
    def applied(self) -> int:
        return sum(a.amount for a in self.allocations)


def allocate(
    amount: int,
    *,
    installments: Sequence[Installment],
    contract_outstanding: int,
    requested: Sequence[AllocationRequest] = (),
    allow_overpayment: bool,
) -> AllocationResult:
    """Applies `amount`: the requested allocations first, the rest to the oldest due first.

    What is left once the contract is fully paid is over-payment: refused (OVERPAYMENT) unless
    allowed, then kept as unapplied credit. Never produces a negative or an over-allocation.
    """
    if amount <= 0:
        raise InvalidArgument.for_field("payment.amount", "must be positive")
    has_plan = bool(installments)
    open_amounts = {i.id: i.outstanding for i in installments}
    violations = Violations()
    explicit: dict[str, int] = {}
    for item in requested:
        if item.amount <= 0:
            violations.add(f"{item.path}.amount", "must be positive")
            continue
        if has_plan and item.installment_id not in open_amounts:
            violations.add(f"{item.path}.installment", "is not an installment of this contract")
            continue
        if not has_plan and item.installment_id:
            violations.add(f"{item.path}.installment", "must be empty: the contract has no payment plan")
            continue
        explicit[item.installment_id] = explicit.get(item.installment_id, 0) + item.amount
        limit = open_amounts[item.installment_id] if has_plan else contract_outstanding
        if explicit[item.installment_id] > limit:
            violations.add(f"{item.path}.amount", f"is more than the {limit} outstanding on it")
    if sum(explicit.values()) > amount:
        violations.add("payment.allocations", f"add up to more than the payment amount {amount}")
    violations.raise_if_any("the payment's allocations are invalid")

    if amount > contract_outstanding and not allow_overpayment:
        raise InvalidArgument(
            f"the payment of {amount} is more than the {contract_outstanding} outstanding on the contract",
            reason="OVERPAYMENT",
            metadata={"outstanding": str(contract_outstanding), "amount": str(amount)},
        )

    applied: dict[str, int] = dict(explicit)
    left = amount - sum(explicit.values())
    if has_plan:
        for installment in sorted(installments, key=lambda i: (i.due_date, i.number)):
            room = installment.outstanding - applied.get(installment.id, 0)
            if left <= 0:
                break
            if room > 0:
                take = min(room, left)
                applied[installment.id] = applied.get(installment.id, 0) + take
                left -= take
    else:
        room = contract_outstanding - applied.get("", 0)
        take = min(max(room, 0), left)
        if take:
            applied[""] = applied.get("", 0) + take
            left -= take
    order = {i.id: (i.due_date, i.number) for i in installments}
    allocations = [
        Allocation(installment_id, value)
        for installment_id, value in sorted(applied.items(), key=lambda kv: order.get(kv[0], (date.min, 0)))
        if value > 0
    ]
    return AllocationResult(allocations=allocations, unapplied=left)


def refit_after_approval(
    result_amount: int,
    *,
    installments: Sequence[Installment],
    contract_outstanding: int,
    requested: Sequence[AllocationRequest],
    allow_overpayment: bool,
    payment_name: str,
) -> AllocationResult:
    """Allocation of an approved payment against the outstanding amounts *now*.

    Requested allocations that no longer fit fall back to automatic allocation; what is left
    over is credit only if the payment was recorded with allow_overpayment.
    """
    open_ids = {i.id: i.outstanding for i in installments}
    still_fitting = [
        r for r in requested if (r.installment_id in open_ids and r.amount <= open_ids[r.installment_id])
    ]
    if sum(r.amount for r in still_fitting) > result_amount:
        still_fitting = []
    try:
        return allocate(
            result_amount,
            installments=installments,
            contract_outstanding=contract_outstanding,
            requested=still_fitting,
            allow_overpayment=allow_overpayment,
        )
    except InvalidArgument as error:
        raise FailedPrecondition(
            f"{payment_name} no longer fits the contract's outstanding amount: {error.message}",
            reason="PAYMENT_NO_LONGER_FITS",
            metadata={"resource": payment_name, "outstanding": str(contract_outstanding)},
        ) from None


def apply_allocations(
    installments: Sequence[Installment], allocations: Sequence[Allocation], *, received_date: date, sign: int
) -> list[Installment]:
    """The installments whose paid amount changed (sign +1 applies, -1 reverses a void)."""
    by_id = {i.id: i for i in installments}
    changed: list[Installment] = []
    for allocation in allocations:
        installment = by_id.get(allocation.installment_id)
        if installment is None:
            continue
        was_paid = installment.is_paid
        installment.paid_amount += sign * allocation.amount
        if installment.paid_amount < 0 or installment.paid_amount > installment.amount:
            raise AssertionError(f"{installment.name} paid amount out of range: {installment.paid_amount}")
        if installment.is_paid and not was_paid:
            installment.paid_date = received_date
        elif not installment.is_paid:
            installment.paid_date = None
        changed.append(installment)
    return changed


def move_onto_plan(plan: Sequence[Installment], payments: Sequence[Payment]) -> list[Payment]:
    """Money received while the contract had no plan is moved onto its new plan, oldest due first.

    Without this, received would no longer equal the installments' paid amounts, and a later void
    of such a payment would reopen nothing. `payments` in the order they were recorded.
    """
    moved: list[Payment] = []
    for payment in payments:
        loose = sum(a.amount for a in payment.allocations if not a.installment_id)
        if not loose:
            continue
        result = allocate(
            loose,
            installments=plan,
            contract_outstanding=sum(i.outstanding for i in plan),
            allow_overpayment=False,
        )
        apply_allocations(plan, result.allocations, received_date=payment.received_date, sign=+1)
        payment.allocations = [a for a in payment.allocations if a.installment_id] + result.allocations
        moved.append(payment)
    return moved


# --- the contract's balance -----------------------------------------------------------------------


@dataclass(frozen=True)
class Balance:
    """The money columns of a contract row; outstanding = amount - received, always."""

    amount: int
    received: int = 0
    credit: int = 0
    pending_approval: int = 0
    overdue: int = 0

    @property
    def outstanding(self) -> int:
        return self.amount - self.received

    def check(self) -> None:
        for label, value in (
            ("received", self.received),
            ("credit", self.credit),
            ("pending_approval", self.pending_approval),
            ("overdue", self.overdue),
            ("outstanding", self.outstanding),
        ):
            if value < 0:
                raise AssertionError(f"contract balance {label} would be negative: {value}")
        if self.overdue > self.outstanding:
            raise AssertionError("overdue above outstanding")


def overdue_amount(installments: Sequence[Installment], today: date) -> int:
    return sum(i.outstanding for i in installments if not i.is_paid and i.is_past_due(today))


# --- payments -------------------------------------------------------------------------------------


@dataclass
class Payment:
    id: str
    number: str
    contract_id: str
    customer: str
    owner: str
    team: str
    currency: str
    amount: int
    received_date: date
    method: PaymentMethod
    reference: str
    note: str
    status: PaymentStatus
    allow_overpayment: bool
    requested: list[AllocationRequest] = field(default_factory=list)
    allocations: list[Allocation] = field(default_factory=list)
    unapplied: int = 0
    approval: str = ""
    recorded_by: str = ""
    void_reason: str = ""
    create_time: datetime | None = None
    update_time: datetime | None = None
    row_version: int = 1

    @property
    def name(self) -> str:
        return f"payments/{self.id}"

    @property
    def contract_name(self) -> str:
        return f"contracts/{self.contract_id}"


def require_payment_status(payment: Payment, expected: PaymentStatus, action: str) -> None:
    if payment.status is not expected:
        raise FailedPrecondition(
            f"{payment.name} is {payment.status.value}; only a {expected.value} payment can be {action}",
            reason="PAYMENT_STATUS_INVALID",
            metadata={"resource": payment.name, "status": payment.status.value},
        )


def validate_received_date(received: date | None, today: date) -> date:
    if received is None:
        raise InvalidArgument.for_field("payment.received_date", "is required")
    if received > today:
        raise InvalidArgument.for_field("payment.received_date", "must not be in the future")
    return received


# --- aging ----------------------------------------------------------------------------------------


class AgingBucket(enum.Enum):
    CURRENT = "current"
    DAYS_1_30 = "days_1_30"
    DAYS_31_60 = "days_31_60"
    DAYS_61_90 = "days_61_90"
    DAYS_OVER_90 = "days_over_90"


# (bucket, first day past due, last day past due or None): whole UTC days after the due date.
AGING_BUCKETS: tuple[tuple[AgingBucket, int, int | None], ...] = (
    (AgingBucket.DAYS_1_30, 1, 30),
    (AgingBucket.DAYS_31_60, 31, 60),
    (AgingBucket.DAYS_61_90, 61, 90),
    (AgingBucket.DAYS_OVER_90, 91, None),
)


def aging_bucket(due_date: date, as_of: date) -> AgingBucket:
    days = (as_of - due_date).days
    if days <= 0:
        return AgingBucket.CURRENT
    for bucket, first, last in AGING_BUCKETS:
        if days >= first and (last is None or days <= last):
            return bucket
    return AgingBucket.DAYS_OVER_90
