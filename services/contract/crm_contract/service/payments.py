"""Use cases for payments: record, approve/reject, void, read.

Every change of money locks the contract row first (SELECT … FOR UPDATE on
PostgreSQL; SQLite has one writer), then reads the installments, applies the
change and writes the installments, the payment and the contract's balance
columns (received, credit, pending_approval, overdue) in the same transaction.
Concurrent payments on one contract therefore serialize and each is counted
exactly once; outstanding = amount - received holds after every commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from crm.contract.v1 import events_pb2
from crm_contract.adapters.contract_repository import ContractRepository
from crm_contract.adapters.payment_repository import (
    DEFAULT_PAYMENT_ORDER,
    PAYMENT_FILTERS,
    PAYMENT_ORDERABLE,
    PaymentRepository,
    sort_keys,
)
from crm_contract.adapters.payment_tables import payments as payments_table
from crm_contract.domain import payments as rules
from crm_contract.domain.approvals import ApprovalState
from crm_contract.domain.contracts import Contract, ContractStatus
from crm_contract.domain.payments import (
    AllocationRequest,
    AllocationResult,
    Installment,
    Payment,
    PaymentMethod,
    PaymentStatus,
    utc_day,
)
from crm_contract.service import approvals
from crm_contract.service.invoices import settle_invoices
from crm_contract.service.payment_events import (
    SUBJECT_PAYMENT_CONFIRMED,
    SUBJECT_PAYMENT_RECORDED,
    SUBJECT_PAYMENT_REJECTED,
    SUBJECT_PAYMENT_VOIDED,
    emit_installment_paid,
    payment_snapshot,
)
from crm_contract.service.payment_plans import Page, cancel_timers, schedule_timers, visible_contract
from crm_shared.access import ScopeGrant
from crm_shared.aip.etag import check_etag
from crm_shared.aip.paging import parse_list_request
from crm_shared.errors import FailedPrecondition, InvalidArgument, NotFound
from crm_shared.ids import new_id
from crm_shared.principal import Principal

PAYMENTS = "payments"
PAYABLE_STATUSES = frozenset({ContractStatus.ACTIVE, ContractStatus.EXPIRED})


@dataclass(frozen=True)
class RequestedAllocation:
    installment: str  # "contracts/{contract}/installments/{number}" or "" (contract without a plan)
    amount: int
    currency: str


@dataclass(frozen=True)
class PaymentInput:
    contract_id: str
    amount: int
    currency: str
    received_date: date | None
    method: PaymentMethod = PaymentMethod.UNSPECIFIED
    reference: str = ""
    note: str = ""
    allocations: Sequence[RequestedAllocation] = ()


@dataclass(frozen=True)
class PaymentView:
    """A payment plus the current names of the installments its allocations point at."""

    payment: Payment
    installment_names: dict[str, str]


def payment_not_found(payment_id: str) -> NotFound:
    name = f"payments/{payment_id}"
    return NotFound(f"{name} not found", reason="PAYMENT_NOT_FOUND", metadata={"resource": name})


def _names(installments: Sequence[Installment]) -> dict[str, str]:
    return {i.id: i.name for i in installments}


def _resolve_requested(
    contract: Contract, installments: Sequence[Installment], requested: Sequence[RequestedAllocation]
) -> list[AllocationRequest]:
    by_number = {i.number: i.id for i in installments}
    prefix = f"{contract.name}/installments/"
    resolved = []
    for index, item in enumerate(requested):
        path = f"payment.allocations[{index}]"
        if item.currency and item.currency != contract.currency:
            raise InvalidArgument.for_field(f"{path}.amount.currency_code", f"must be {contract.currency}")
        installment_id = ""
        if item.installment:
            number = item.installment.removeprefix(prefix)
            if (
                not item.installment.startswith(prefix)
                or not number.isdigit()
                or int(number) not in by_number
            ):
                raise InvalidArgument.for_field(
                    f"{path}.installment", f"{item.installment!r} is not an installment of {contract.name}"
                )
            installment_id = by_number[int(number)]
        elif installments:
            raise InvalidArgument.for_field(
                f"{path}.installment", "is required: the contract has a payment plan"
            )
        resolved.append(AllocationRequest(installment_id, item.amount, path))
    return resolved


async def _apply(
    uow, contract: Contract, payment: Payment, installments: list[Installment], result: AllocationResult
):
    """Counts a payment: installments, the contract's balance, InstallmentPaid, invoices."""
    today = utc_day(uow.now)
    was_paid = {i.id for i in installments if i.is_paid}
    changed = rules.apply_allocations(
        installments, result.allocations, received_date=payment.received_date, sign=+1
    )
    await PaymentRepository(uow.session).save_installment_progress(changed)
    for installment in changed:
        if installment.is_paid and installment.id not in was_paid:
            await cancel_timers(uow, installment.id)
            emit_installment_paid(uow, installment, contract, today)
    payment.allocations = list(result.allocations)
    payment.unapplied = result.unapplied
    return replace(
        contract,
        received=contract.received + result.applied,
        credit=contract.credit + result.unapplied,
        overdue=rules.overdue_amount(installments, today),
    )


async def _save_balance(uow, contract: Contract) -> None:
    rules.Balance(
        contract.amount, contract.received, contract.credit, contract.pending_approval, contract.overdue
    ).check()
    await ContractRepository(uow.session).save_balance(contract)


def _emit(uow, subject: str, message, payment: Payment) -> None:
    uow.emit(subject, message, resource=payment.name)


async def record_payment(
    uow, deps, principal: Principal, data: PaymentInput, *, allow_overpayment: bool
) -> PaymentView:
    grant = deps.policy.grant(principal, PAYMENTS, "create")
    if not data.contract_id:
        raise InvalidArgument.for_field("payment.contract", "is required")
    contract = await visible_contract(uow.session, grant, data.contract_id, lock=True)
    if contract.status not in PAYABLE_STATUSES:
        raise FailedPrecondition(
            f"{contract.name} is {contract.status.value}; payments need an active or expired contract",
            reason="CONTRACT_NOT_PAYABLE",
            metadata={"resource": contract.name, "status": contract.status.value},
        )
    if data.currency != contract.currency:
        raise InvalidArgument.for_field(
            "payment.amount.currency_code", f"must be the contract's currency {contract.currency}"
        )
    received_date = rules.validate_received_date(data.received_date, utc_day(uow.now))
    repo = PaymentRepository(uow.session)
    installments = await repo.installments_of(contract.id)
    requested = _resolve_requested(contract, installments, data.allocations)
    # Validated now even when an approval follows: a bad request is refused at once.
    result = rules.allocate(
        data.amount,
        installments=installments,
        contract_outstanding=contract.outstanding,
        requested=requested,
        allow_overpayment=allow_overpayment,
    )
    payment = Payment(
        id=new_id(),
        number=await repo.next_number(),
        contract_id=contract.id,
        customer=contract.customer,
        owner=contract.owner,
        team=contract.team,
        currency=contract.currency,
        amount=data.amount,
        received_date=received_date,
        method=data.method,
        reference=data.reference,
        note=data.note,
        status=PaymentStatus.CONFIRMED,
        allow_overpayment=allow_overpayment,
        requested=requested,
        recorded_by=principal.subject,
        create_time=uow.now,
        update_time=uow.now,
    )
    approval = await approvals.open_approval(
        uow,
        target_type="payment",
        target=payment.name,
        owner=contract.owner,
        team=contract.team,
        currency=contract.currency,
        amount=payment.amount,
        contract_type=contract.contract_type,
        submitter=principal.subject,
    )
    if approval is not None:
        payment.status = PaymentStatus.PENDING_APPROVAL
        payment.approval = approval.name
        contract = replace(contract, pending_approval=contract.pending_approval + payment.amount)
    else:
        contract = await _apply(uow, contract, payment, installments, result)
    await repo.add_payment(payment)
    await _save_balance(uow, contract)
    names = _names(installments)
    _emit(
        uow,
        SUBJECT_PAYMENT_RECORDED,
        events_pb2.PaymentRecorded(payment=payment_snapshot(payment, names)),
        payment,
    )
    if payment.status is PaymentStatus.CONFIRMED:
        _emit(
            uow,
            SUBJECT_PAYMENT_CONFIRMED,
            events_pb2.PaymentConfirmed(payment=payment_snapshot(payment, names)),
            payment,
        )
        await settle_invoices(uow, contract)
    uow.audit("recorded", payment.name, ["contract", "amount", "received_date", "allocations", "status"])
    return PaymentView(payment, names)


async def _visible_payment(session, deps, principal: Principal, payment_id: str, action: str) -> Payment:
    grant = deps.policy.grant(principal, PAYMENTS, action)
    payment = await PaymentRepository(session).get_payment(payment_id, grant)
    if payment is None:
        raise payment_not_found(payment_id)
    return payment


async def _locked(uow, payment: Payment) -> tuple[Contract, Payment, list[Installment]]:
    """Contract row lock first (the order every money change takes), then the payment as it is now."""
    contract = await ContractRepository(uow.session).get(payment.contract_id, lock=True)
    if contract is None:
        raise payment_not_found(payment.id)
    repo = PaymentRepository(uow.session)
    fresh = await repo.get_payment(payment.id, lock=True)
    if fresh is None:
        raise payment_not_found(payment.id)
    return contract, fresh, await repo.installments_of(contract.id)


async def get_payment(session: AsyncSession, deps, principal: Principal, payment_id: str) -> PaymentView:
    payment = await _visible_payment(session, deps, principal, payment_id, "read")
    return PaymentView(payment, _names(await PaymentRepository(session).installments_of(payment.contract_id)))


async def list_payments(
    session: AsyncSession,
    deps,
    principal: Principal,
    *,
    page_size: int,
    page_token: str,
    filter_text: str,
    order_by: str,
) -> Page:
    grant = deps.policy.grant(principal, PAYMENTS, "read")
    req = parse_list_request(
        deps.page_tokens,
        collection="payments",
        caller=principal.subject,
        page_size=page_size,
        page_token=page_token,
        filter_text=filter_text,
        filters=PAYMENT_FILTERS,
        order_by=order_by,
        orderable=PAYMENT_ORDERABLE,
        default_order=DEFAULT_PAYMENT_ORDER,
    )
    repo = PaymentRepository(session)
    rows = await repo.list_payments(
        grant,
        where=req.where,
        sort=sort_keys(payments_table, req.order.fields),
        after=req.after,
        limit=req.limit + 1,
    )
    page = req.page(rows, deps.page_tokens)
    names: dict[str, dict[str, str]] = {}
    for payment in page.items:
        if payment.contract_id not in names and payment.allocations:
            names[payment.contract_id] = _names(await repo.installments_of(payment.contract_id))
    return Page([PaymentView(p, names.get(p.contract_id, {})) for p in page.items], page.next_page_token)


async def decide_payment(
    uow, deps, principal: Principal, payment_id: str, *, approve: bool, comment: str
) -> PaymentView:
    """The current approval step decides; on the last approval the payment is applied, now."""
    deps.policy.grant(principal, PAYMENTS, "approve")
    read_scope = deps.policy.scope(principal, PAYMENTS, "read")
    payment = await PaymentRepository(uow.session).get_payment(payment_id)
    if payment is None:
        raise payment_not_found(payment_id)
    # Someone who may not read this payment may still act when the current step names them;
    # otherwise the approval engine answers NOT_FOUND, as if the payment did not exist.
    read_grant = ScopeGrant(read_scope, principal.subject, principal.team)
    can_read = read_grant.permits(owner=payment.owner, team=payment.team)
    contract, payment, installments = await _locked(uow, payment)
    decided = await approvals.decide(
        uow, deps, principal, target=payment.name, approve=approve, comment=comment, can_read_target=can_read
    )
    rules.require_payment_status(payment, PaymentStatus.PENDING_APPROVAL, "approved or rejected")
    names = _names(installments)
    before = payment.row_version
    if decided.state is ApprovalState.PENDING:  # more steps to go
        return PaymentView(payment, names)
    contract = replace(contract, pending_approval=contract.pending_approval - payment.amount)
    if decided.state is ApprovalState.APPROVED:
        result = rules.refit_after_approval(
            payment.amount,
            installments=installments,
            contract_outstanding=contract.outstanding,
            requested=payment.requested,
            allow_overpayment=payment.allow_overpayment,
            payment_name=payment.name,
        )
        payment.status = PaymentStatus.CONFIRMED
        contract = await _apply(uow, contract, payment, installments, result)
    else:
        payment.status = PaymentStatus.REJECTED
    payment.update_time, payment.row_version = uow.now, before + 1
    await PaymentRepository(uow.session).save_payment(
        payment, expected_row_version=before, allocations_changed=payment.status is PaymentStatus.CONFIRMED
    )
    await _save_balance(uow, contract)
    snapshot = payment_snapshot(payment, names)
    if payment.status is PaymentStatus.CONFIRMED:
        _emit(uow, SUBJECT_PAYMENT_CONFIRMED, events_pb2.PaymentConfirmed(payment=snapshot), payment)
        await settle_invoices(uow, contract)
    else:
        _emit(
            uow,
            SUBJECT_PAYMENT_REJECTED,
            events_pb2.PaymentRejected(payment=snapshot, comment=comment),
            payment,
        )
    uow.audit(payment.status.value, payment.name, ["status", "allocations"])
    return PaymentView(payment, names)


async def void_payment(
    uow, deps, principal: Principal, payment_id: str, etag: str, reason: str
) -> PaymentView:
    if not reason.strip():
        raise InvalidArgument.for_field("reason", "is required")
    visible = await _visible_payment(uow.session, deps, principal, payment_id, "void")
    contract, payment, installments = await _locked(uow, visible)
    check_etag(etag, payment.id, payment.row_version, resource=payment.name)
    rules.require_payment_status(payment, PaymentStatus.CONFIRMED, "voided")
    changed = rules.apply_allocations(
        installments, payment.allocations, received_date=payment.received_date, sign=-1
    )
    repo = PaymentRepository(uow.session)
    await repo.save_installment_progress(changed)
    for installment in changed:
        # Reopened: it needs its reminder/overdue timers again (they no-op if already notified).
        await schedule_timers(uow, installment)
    today = utc_day(uow.now)
    applied = sum(a.amount for a in payment.allocations)
    contract = replace(
        contract,
        received=contract.received - applied,
        credit=contract.credit - payment.unapplied,
        overdue=rules.overdue_amount(installments, today),
    )
    before = payment.row_version
    payment.status, payment.void_reason = PaymentStatus.VOIDED, reason
    payment.update_time, payment.row_version = uow.now, before + 1
    await repo.save_payment(payment, expected_row_version=before, allocations_changed=False)
    await _save_balance(uow, contract)
    names = _names(installments)
    _emit(
        uow,
        SUBJECT_PAYMENT_VOIDED,
        events_pb2.PaymentVoided(payment=payment_snapshot(payment, names), reason=reason),
        payment,
    )
    await settle_invoices(uow, contract)
    uow.audit("voided", payment.name, ["status", "void_reason"])
    return PaymentView(payment, names)
