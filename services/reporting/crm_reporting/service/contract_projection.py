"""The contract area: contract, payment-plan, installment and payment events projected into read
models, and the money facts other areas read (customer 360, sales performance, analytics).

Choices (see adapters/contract_tables):
- Contracts keep the latest snapshot by event time (ties: the later lifecycle status wins).
- Installments keep due date and amount from the latest snapshot by event time; a plan replaces
  the contract's installments (those not in it are dropped, an older installment event cannot
  bring one back).
- Paid amounts come from ONE path only: the allocations of payments whose latest status is
  CONFIRMED. Installment snapshots' paid amounts are ignored, so a PaymentConfirmed and an
  InstallmentPaid never count the same money twice, and a void (status VOIDED) nets it to zero.
- Payment statuses only move forward (pending -> confirmed -> voided, pending -> rejected), so a
  snapshot replaces the stored one when its status rank is higher, or equal and newer.
Every handler is idempotent and order-tolerant: replaying the stream twice changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time

import sqlalchemy as sa

from crm.contract.v1 import common_pb2 as contract_common_pb2
from crm.contract.v1 import events_pb2
from crm.customer.v1 import data_events_pb2
from crm_reporting.adapters import contract_queries as queries
from crm_reporting.adapters.contract_tables import (
    report_contracts as contracts,
)
from crm_reporting.adapters.contract_tables import (
    report_installments as installments,
)
from crm_reporting.adapters.contract_tables import (
    report_payment_allocations as allocations,
)
from crm_reporting.adapters.contract_tables import (
    report_payment_plans as plans,
)
from crm_reporting.adapters.contract_tables import (
    report_payments as payments,
)
from crm_reporting.adapters.customer_tables import report_customers
from crm_reporting.adapters.projection_tables import dialect_insert
from crm_reporting.domain.finance import day_bounds
from crm_reporting.service import timeline
from crm_shared.events.envelope import occurred_at

SOURCE = "contract"

CONTRACT_STATUS_RANK = {
    "": 0,
    "UNSPECIFIED": 0,
    "DRAFT": 1,
    "PENDING_APPROVAL": 2,
    "REJECTED": 2,
    "APPROVED": 3,
    "ACTIVE": 4,
    "EXPIRED": 5,
    "TERMINATED": 5,
}
PAYMENT_STATUS_RANK = {"UNSPECIFIED": 0, "PENDING_APPROVAL": 1, "CONFIRMED": 2, "REJECTED": 3, "VOIDED": 3}


# --- conversions ---------------------------------------------------------------------------------
def _date(value) -> date | None:
    return date(value.year, value.month, value.day) if value is not None and value.year else None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _contract_status(value: int) -> str:
    return contract_common_pb2.ContractStatus.Name(value).removeprefix("CONTRACT_STATUS_")


def _payment_status(value: int) -> str:
    return contract_common_pb2.PaymentStatus.Name(value).removeprefix("PAYMENT_STATUS_")


def _actor(envelope) -> str:
    actor = getattr(envelope, "actor", None)
    return getattr(actor, "subject", "") if actor is not None else ""


async def resolve_customer(session, customer: str) -> str:
    """The survivor a merged customer now lives on (CustomerMerged seen on CRM_CUSTOMER), else itself:
    a contract or payment event of a loser published or delivered after the merge lands on the
    survivor too."""
    seen = {customer}
    while customer:
        merged_into = (
            await session.execute(
                sa.select(report_customers.c.merged_into).where(report_customers.c.customer == customer)
            )
        ).scalar()
        if not merged_into or merged_into in seen:
            return customer
        seen.add(merged_into)
        customer = merged_into
    return customer


async def on_customer_merged(uow, envelope, payload: data_events_pb2.CustomerMerged) -> None:
    """The losers' contracts, installments and payments now belong to the survivor."""
    losers = [loser for loser in payload.losers if loser and loser != payload.survivor]
    if not losers:
        return
    for table in (contracts, installments, payments):
        await uow.session.execute(
            sa.update(table).where(table.c.customer.in_(losers)).values(customer=payload.survivor)
        )


# --- contracts -----------------------------------------------------------------------------------
async def _stored_contract(session, name: str):
    return (
        await session.execute(
            sa.select(contracts.c.event_time, contracts.c.status, contracts.c.deleted).where(
                contracts.c.name == name
            )
        )
    ).first()


def _newer(stored_time: datetime, stored_rank: int, when: datetime, rank: int) -> bool:
    stored_time = _aware(stored_time)
    return when > stored_time or (when == stored_time and rank >= stored_rank)


async def apply_contract_snapshot(session, snapshot: events_pb2.ContractSnapshot, when: datetime) -> bool:
    """Store the snapshot unless a newer one (or a deletion at or after it) is stored."""
    if not snapshot.name:
        return False
    status = _contract_status(snapshot.status)
    stored = await _stored_contract(session, snapshot.name)
    if stored is not None:
        if stored.deleted and _aware(stored.event_time) >= when:
            return False
        if not _newer(
            stored.event_time,
            CONTRACT_STATUS_RANK.get(stored.status, 0),
            when,
            CONTRACT_STATUS_RANK.get(status, 0),
        ):
            return False
    values = dict(
        number=snapshot.number,
        customer=await resolve_customer(session, snapshot.customer),
        owner=snapshot.owner,
        team=snapshot.team,
        opportunity=snapshot.opportunity,
        currency=snapshot.amount.currency_code,
        amount_minor=snapshot.amount.amount_minor,
        status=status,
        start_date=_date(snapshot.start_date) if snapshot.HasField("start_date") else None,
        end_date=_date(snapshot.end_date) if snapshot.HasField("end_date") else None,
        signed_date=_date(snapshot.signed_date) if snapshot.HasField("signed_date") else None,
        renewal_of=snapshot.renewal_of,
        deleted=False,
        event_time=when,
    )
    if stored is None:
        await session.execute(
            dialect_insert(session, contracts).values(name=snapshot.name, **values).on_conflict_do_nothing()
        )
    else:
        await session.execute(sa.update(contracts).where(contracts.c.name == snapshot.name).values(**values))
    return True


async def on_contract_snapshot_event(uow, envelope, payload) -> None:
    snapshot = payload.renewal if isinstance(payload, events_pb2.ContractRenewed) else payload.contract
    await apply_contract_snapshot(uow.session, snapshot, occurred_at(envelope))


async def on_contract_signed(uow, envelope, payload: events_pb2.ContractSigned) -> None:
    when = occurred_at(envelope)
    if payload.HasField("snapshot"):
        await apply_contract_snapshot(uow.session, payload.snapshot, when)
    else:
        await _set_status(uow.session, payload.contract, payload.customer, "ACTIVE", when)
    snapshot = payload.snapshot
    await timeline.record(
        uow,
        key=f"{envelope.id}:contract_signed",
        customer=await resolve_customer(uow.session, payload.customer or snapshot.customer),
        time=payload.sign_time.ToDatetime(tzinfo=UTC) if payload.HasField("sign_time") else when,
        kind="contract_signed",
        resource=payload.contract,
        summary=f"contract {snapshot.number or payload.contract} signed",
        currency=snapshot.amount.currency_code,
        amount_minor=snapshot.amount.amount_minor,
        actor=_actor(envelope),
    )


async def _set_status(session, name: str, customer: str, status: str, when: datetime) -> None:
    stored = await _stored_contract(session, name)
    if stored is None:
        await session.execute(
            dialect_insert(session, contracts)
            .values(
                name=name, customer=await resolve_customer(session, customer), status=status, event_time=when
            )
            .on_conflict_do_nothing()
        )
    elif _newer(
        stored.event_time, CONTRACT_STATUS_RANK.get(stored.status, 0), when, CONTRACT_STATUS_RANK[status]
    ):
        await session.execute(
            sa.update(contracts).where(contracts.c.name == name).values(status=status, event_time=when)
        )


async def on_contract_ended(uow, envelope, payload) -> None:
    """ContractTerminated / ContractExpired: the snapshot and a timeline entry."""
    when = occurred_at(envelope)
    await apply_contract_snapshot(uow.session, payload.contract, when)
    kind = "contract_terminated" if isinstance(payload, events_pb2.ContractTerminated) else "contract_expired"
    await timeline.record(
        uow,
        key=f"{envelope.id}:{kind}",
        customer=await resolve_customer(uow.session, payload.contract.customer),
        time=when,
        kind=kind,
        resource=payload.contract.name,
        summary=f"contract {payload.contract.number or payload.contract.name} {kind.split('_')[1]}",
        currency=payload.contract.amount.currency_code,
        amount_minor=payload.contract.amount.amount_minor,
        actor=_actor(envelope),
    )


async def on_contract_deleted(uow, envelope, payload: events_pb2.ContractDeleted) -> None:
    session, when = uow.session, occurred_at(envelope)
    stored = await _stored_contract(session, payload.contract)
    if stored is None:
        await session.execute(
            dialect_insert(session, contracts)
            .values(
                name=payload.contract,
                customer=await resolve_customer(session, payload.customer),
                owner=payload.owner,
                team=payload.team,
                deleted=True,
                event_time=when,
            )
            .on_conflict_do_nothing()
        )
    elif when >= _aware(stored.event_time):
        await session.execute(
            sa.update(contracts)
            .where(contracts.c.name == payload.contract)
            .values(deleted=True, event_time=when)
        )


# --- payment plans and installments --------------------------------------------------------------
def _installment_values(snapshot: events_pb2.InstallmentSnapshot, when: datetime) -> dict:
    return dict(
        contract=snapshot.contract,
        customer=snapshot.customer,
        owner=snapshot.owner,
        team=snapshot.team,
        number=snapshot.number,
        due_date=_date(snapshot.due_date),
        currency=snapshot.amount.currency_code,
        amount_minor=snapshot.amount.amount_minor,
        event_time=when,
    )


async def on_payment_plan_set(uow, envelope, payload: events_pb2.PaymentPlanSet) -> None:
    session, when = uow.session, occurred_at(envelope)
    stored = (
        await session.execute(sa.select(plans.c.event_time).where(plans.c.contract == payload.contract))
    ).scalar()
    if stored is not None and _aware(stored) > when:
        return  # a newer plan is already applied
    if stored is None:
        await session.execute(
            dialect_insert(session, plans)
            .values(contract=payload.contract, event_time=when)
            .on_conflict_do_nothing()
        )
    else:
        await session.execute(
            sa.update(plans).where(plans.c.contract == payload.contract).values(event_time=when)
        )
    names = [i.name for i in payload.installments]
    # Installments the plan no longer has are gone (unless a newer event touched them).
    await session.execute(
        sa.delete(installments).where(
            installments.c.contract == payload.contract,
            installments.c.name.not_in(names) if names else sa.true(),
            installments.c.event_time <= when,
        )
    )
    for snapshot in payload.installments:
        await _apply_installment(session, snapshot, when, plan_time=when)


async def _apply_installment(
    session, snapshot: events_pb2.InstallmentSnapshot, when: datetime, *, plan_time: datetime | None
) -> None:
    if not snapshot.name or not snapshot.HasField("due_date"):
        return
    stored = (
        await session.execute(
            sa.select(installments.c.event_time).where(installments.c.name == snapshot.name)
        )
    ).scalar()
    values = _installment_values(snapshot, when)
    values["customer"] = await resolve_customer(session, snapshot.customer)
    if stored is None:
        if plan_time is None:
            latest_plan = (
                await session.execute(
                    sa.select(plans.c.event_time).where(plans.c.contract == snapshot.contract)
                )
            ).scalar()
            if latest_plan is not None and _aware(latest_plan) > when:
                return  # removed by a newer plan
        await session.execute(
            dialect_insert(session, installments)
            .values(name=snapshot.name, **values)
            .on_conflict_do_nothing()
        )
    elif when >= _aware(stored):
        await session.execute(
            sa.update(installments).where(installments.c.name == snapshot.name).values(**values)
        )


async def on_installment_event(uow, envelope, payload) -> None:
    """PaymentDue / PaymentOverdue / InstallmentPaid: due date and amount (paid amounts ignored)."""
    await _apply_installment(uow.session, payload.installment, occurred_at(envelope), plan_time=None)


# --- payments ------------------------------------------------------------------------------------
async def apply_payment_snapshot(session, snapshot: events_pb2.PaymentSnapshot, when: datetime) -> bool:
    if not snapshot.name or not snapshot.HasField("received_date"):
        return False
    status = _payment_status(snapshot.status)
    rank = PAYMENT_STATUS_RANK.get(status, 0)
    stored = (
        await session.execute(
            sa.select(payments.c.status_rank, payments.c.event_time).where(payments.c.name == snapshot.name)
        )
    ).first()
    if stored is not None and (rank, when) <= (stored.status_rank, _aware(stored.event_time)):
        return False
    values = dict(
        number=snapshot.number,
        contract=snapshot.contract,
        customer=await resolve_customer(session, snapshot.customer),
        owner=snapshot.owner,
        team=snapshot.team,
        currency=snapshot.amount.currency_code,
        amount_minor=snapshot.amount.amount_minor,
        received_date=_date(snapshot.received_date),
        status=status,
        status_rank=rank,
        event_time=when,
    )
    if stored is None:
        await session.execute(dialect_insert(session, payments).values(name=snapshot.name, **values))
    else:
        await session.execute(sa.update(payments).where(payments.c.name == snapshot.name).values(**values))
    await session.execute(sa.delete(allocations).where(allocations.c.payment == snapshot.name))
    rows = [
        dict(
            payment=snapshot.name,
            seq=seq,
            contract=snapshot.contract,
            installment=a.installment,
            amount_minor=a.amount.amount_minor,
        )
        for seq, a in enumerate(snapshot.allocations)
    ]
    if rows:
        await session.execute(sa.insert(allocations), rows)
    return True


async def on_payment_event(uow, envelope, payload) -> None:
    when = occurred_at(envelope)
    await apply_payment_snapshot(uow.session, payload.payment, when)
    kind = {
        events_pb2.PaymentConfirmed: "payment_confirmed",
        events_pb2.PaymentVoided: "payment_voided",
    }.get(type(payload))
    if kind is None:
        return
    snapshot = payload.payment
    await timeline.record(
        uow,
        key=f"{envelope.id}:{kind}",
        customer=await resolve_customer(uow.session, snapshot.customer),
        time=when,
        kind=kind,
        resource=snapshot.name,
        summary=f"payment {snapshot.number or snapshot.name} {kind.removeprefix('payment_')}",
        currency=snapshot.amount.currency_code,
        amount_minor=snapshot.amount.amount_minor,
        actor=_actor(envelope),
    )


def register(registry, app) -> None:
    registry.on("customer", data_events_pb2.CustomerMerged, on_customer_merged)
    for payload_type in (
        events_pb2.ContractCreated,
        events_pb2.ContractUpdated,
        events_pb2.ContractSubmitted,
        events_pb2.ContractApproved,
        events_pb2.ContractRejected,
        events_pb2.ContractWithdrawn,
        events_pb2.ContractRenewalDue,
        events_pb2.ContractRenewed,
    ):
        registry.on(SOURCE, payload_type, on_contract_snapshot_event)
    registry.on(SOURCE, events_pb2.ContractSigned, on_contract_signed)
    registry.on(SOURCE, events_pb2.ContractTerminated, on_contract_ended)
    registry.on(SOURCE, events_pb2.ContractExpired, on_contract_ended)
    registry.on(SOURCE, events_pb2.ContractDeleted, on_contract_deleted)
    registry.on(SOURCE, events_pb2.PaymentPlanSet, on_payment_plan_set)
    for payload_type in (events_pb2.PaymentDue, events_pb2.PaymentOverdue, events_pb2.InstallmentPaid):
        registry.on(SOURCE, payload_type, on_installment_event)
    for payload_type in (
        events_pb2.PaymentRecorded,
        events_pb2.PaymentConfirmed,
        events_pb2.PaymentRejected,
        events_pb2.PaymentVoided,
    ):
        registry.on(SOURCE, payload_type, on_payment_event)


# --- money facts for the other areas ------------------------------------------------------------
def _today() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True)
class MoneySummary:
    # Confirmed (not voided) payments, all time, per currency.
    lifetime_value: dict[str, int] = field(default_factory=dict)
    # Unpaid installments (and unplanned contract balances) of signed contracts, per currency.
    outstanding: dict[str, int] = field(default_factory=dict)
    # Of that, past its due date.
    overdue: dict[str, int] = field(default_factory=dict)
    active_contracts: int = 0


async def customer_money_summary(session, customer: str, *, as_of: date | None = None) -> MoneySummary:
    """The customer's money facts for the 360 view (as of today UTC unless `as_of`)."""
    as_of = as_of or _today()
    lifetime: dict[str, int] = defaultdict(int)
    rows = await session.execute(
        sa.select(payments.c.currency, sa.func.sum(payments.c.amount_minor))
        .where(payments.c.customer == customer, payments.c.status == queries.CONFIRMED)
        .group_by(payments.c.currency)
    )
    for currency, total in rows:
        lifetime[currency] += int(total)
    outstanding: dict[str, int] = defaultdict(int)
    overdue: dict[str, int] = defaultdict(int)
    mine = contracts.c.customer == customer
    for position in await queries.installment_positions(session, mine, paid_until=None):
        if position.outstanding:
            outstanding[position.currency] += position.outstanding
            if position.due_date < as_of:
                overdue[position.currency] += position.outstanding
    for position in await queries.unplanned_positions(session, mine, paid_until=None):
        if position.outstanding:
            outstanding[position.currency] += position.outstanding
    active = (
        await session.execute(
            sa.select(sa.func.count()).where(
                mine, contracts.c.status == "ACTIVE", contracts.c.deleted.is_(False)
            )
        )
    ).scalar_one()
    return MoneySummary(
        lifetime_value=dict(lifetime),
        outstanding={k: v for k, v in outstanding.items() if v},
        overdue={k: v for k, v in overdue.items() if v},
        active_contracts=int(active),
    )


async def collected_amounts(session, scope, *, group: str) -> dict[tuple[str, str], int]:
    """(key, currency) -> confirmed minus voided payments received in [scope.start, scope.end),
    within the caller's scope (the payment's owner/team). `group`: "owner", "team" or "month"
    (key "YYYY-MM" of the received date)."""
    if group not in ("owner", "team", "month"):
        raise ValueError(f"unknown grouping {group!r}")
    first, after_last = day_bounds(scope.start, scope.end)
    column = {"owner": payments.c.owner, "team": payments.c.team, "month": None}[group]
    rows = await queries.confirmed_payments_by_day(
        session,
        scope.predicate(payments.c.owner, payments.c.team),
        received_from=first,
        received_before=after_last,
        group_column=column,
    )
    result: dict[tuple[str, str], int] = defaultdict(int)
    for owner_or_team, received, currency, amount in rows:
        key = f"{received.year:04d}-{received.month:02d}" if group == "month" else owner_or_team
        result[(key, currency)] += amount
    return dict(result)


@dataclass(frozen=True)
class CustomerPayments:
    count: int
    total_minor: int
    first_time: datetime | None
    last_time: datetime | None
    # Unpaid installments past due at `until` (today when not given).
    overdue_minor: int = 0


def _until_day(until) -> date | None:
    if until is None:
        return None
    if isinstance(until, datetime):
        return _aware(until).astimezone(UTC).date()
    return until


async def payment_history(session, currency: str, *, until=None) -> dict[str, CustomerPayments]:
    """customer -> confirmed payments in `currency` received by `until` (a date or datetime; None:
    all), and the overdue balance then — for RFM and payment behaviour in the analytics."""
    day = _until_day(until)
    where = [payments.c.status == queries.CONFIRMED, payments.c.currency == currency]
    if day is not None:
        where.append(payments.c.received_date <= day)
    rows = await session.execute(
        sa.select(
            payments.c.customer,
            sa.func.count(),
            sa.func.sum(payments.c.amount_minor),
            sa.func.min(payments.c.received_date),
            sa.func.max(payments.c.received_date),
        )
        .where(*where)
        .group_by(payments.c.customer)
    )

    def moment(value) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite aggregate over a DATE column
            value = date.fromisoformat(value)
        return datetime.combine(value, time.min, UTC)

    history = {
        r[0]: CustomerPayments(
            count=int(r[1]), total_minor=int(r[2]), first_time=moment(r[3]), last_time=moment(r[4])
        )
        for r in rows
    }
    as_of = day or _today()
    overdue: dict[str, int] = defaultdict(int)
    positions = await queries.installment_positions(
        session, sa.and_(contracts.c.currency == currency), paid_until=as_of
    )
    for position in positions:
        if position.currency == currency and position.due_date < as_of and position.outstanding:
            overdue[position.customer] += position.outstanding
    for customer, amount in overdue.items():
        current = history.get(customer)
        history[customer] = (
            CustomerPayments(count=0, total_minor=0, first_time=None, last_time=None, overdue_minor=amount)
            if current is None
            else CustomerPayments(
                current.count, current.total_minor, current.first_time, current.last_time, amount
            )
        )
    return history
