"""Contract events for the reporting tests: snapshots, publishing on CRM_CONTRACT like the contract
service's outbox relay, and waiting until the reporting consumer applied them."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from google.type import date_pb2

from crm.common.v1 import money_pb2
from crm.contract.v1 import common_pb2 as c
from crm.contract.v1 import events_pb2 as ev
from crm_shared.events.envelope import build_envelope, serialize_envelope
from crm_shared.ids import new_id

CONSUMER = "reporting-contract"
WAIT_SECONDS = 30.0

SUBJECTS = {
    ev.ContractCreated: "crm.contract.contract.created",
    ev.ContractUpdated: "crm.contract.contract.updated",
    ev.ContractDeleted: "crm.contract.contract.deleted",
    ev.ContractSigned: "crm.contract.contract.signed",
    ev.ContractTerminated: "crm.contract.contract.terminated",
    ev.ContractExpired: "crm.contract.contract.expired",
    ev.PaymentPlanSet: "crm.contract.payment_plan.set",
    ev.PaymentDue: "crm.contract.installment.due",
    ev.PaymentOverdue: "crm.contract.installment.overdue",
    ev.InstallmentPaid: "crm.contract.installment.paid",
    ev.PaymentRecorded: "crm.contract.payment.recorded",
    ev.PaymentConfirmed: "crm.contract.payment.confirmed",
    ev.PaymentRejected: "crm.contract.payment.rejected",
    ev.PaymentVoided: "crm.contract.payment.voided",
}


def the_app(reporting_service):
    [worker] = [w for w in reporting_service.parts.workers if getattr(w, "source", None) == "contract"]
    return worker.app


def uid() -> str:
    return str(uuid.uuid4())


def money(amount: int, currency: str = "CNY") -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, amount_minor=amount)


def date_pb(d: date) -> date_pb2.Date:
    return date_pb2.Date(year=d.year, month=d.month, day=d.day)


def at(d: date, hour: int = 9) -> datetime:
    return datetime(d.year, d.month, d.day, hour, tzinfo=UTC)


@dataclass(frozen=True)
class Event:
    payload: object
    resource: str
    when: datetime
    id: str = field(default_factory=new_id)


@dataclass
class Deal:
    """One signed contract with a plan and payments, as the contract service would publish it."""

    customer: str
    owner: str
    team: str
    amount: int
    currency: str = "CNY"
    contract: str = field(default_factory=lambda: f"contracts/{uid()}")
    events: list[Event] = field(default_factory=list)
    plan: list[tuple[date, int]] = field(default_factory=list)

    def snapshot(self, status: int) -> ev.ContractSnapshot:
        return ev.ContractSnapshot(
            name=self.contract,
            number=f"HT-{self.contract[-6:]}",
            customer=self.customer,
            amount=money(self.amount, self.currency),
            status=status,
            owner=self.owner,
            team=self.team,
        )

    def installment_name(self, number: int) -> str:
        return f"{self.contract}/installments/{number}"

    def installment(self, number: int) -> ev.InstallmentSnapshot:
        due, amount = self.plan[number - 1]
        return ev.InstallmentSnapshot(
            name=self.installment_name(number),
            contract=self.contract,
            customer=self.customer,
            number=number,
            due_date=date_pb(due),
            amount=money(amount, self.currency),
            owner=self.owner,
            team=self.team,
        )

    def signed(self, when: datetime) -> Deal:
        self.events.append(
            Event(
                ev.ContractCreated(contract=self.snapshot(c.CONTRACT_STATUS_DRAFT)),
                self.contract,
                when - timedelta(hours=1),
            )
        )
        self.events.append(
            Event(
                ev.ContractSigned(
                    contract=self.contract,
                    customer=self.customer,
                    sign_time=_ts(when),
                    snapshot=self.snapshot(c.CONTRACT_STATUS_ACTIVE),
                ),
                self.contract,
                when,
            )
        )
        return self

    def set_plan(self, when: datetime, plan: list[tuple[date, int]]) -> Deal:
        self.plan = list(plan)
        self.events.append(
            Event(
                ev.PaymentPlanSet(
                    contract=self.contract,
                    customer=self.customer,
                    owner=self.owner,
                    team=self.team,
                    installments=[self.installment(n) for n in range(1, len(plan) + 1)],
                ),
                self.contract,
                when,
            )
        )
        return self

    def installment_event(self, kind, number: int, when: datetime) -> Deal:
        snapshot = self.installment(number)
        payload = kind(installment=snapshot)
        self.events.append(Event(payload, snapshot.name, when))
        return self

    def pay(
        self,
        when: datetime,
        received: date,
        allocations: list[tuple[int | None, int]],
        *,
        voided_at: datetime | None = None,
        payment: str | None = None,
    ) -> str:
        """A payment recorded and confirmed at `when` (allocations: (installment number or None, amount))."""
        name = payment or f"payments/{uid()}"

        def snap(status: int) -> ev.PaymentSnapshot:
            return ev.PaymentSnapshot(
                name=name,
                number=f"P-{name[-6:]}",
                contract=self.contract,
                customer=self.customer,
                amount=money(sum(a for _, a in allocations), self.currency),
                received_date=date_pb(received),
                status=status,
                allocations=[
                    ev.AllocationSnapshot(
                        installment=self.installment_name(n) if n else "", amount=money(a, self.currency)
                    )
                    for n, a in allocations
                ],
                owner=self.owner,
                team=self.team,
            )

        confirmed = snap(c.PAYMENT_STATUS_CONFIRMED)
        self.events.append(Event(ev.PaymentRecorded(payment=confirmed), name, when))
        self.events.append(Event(ev.PaymentConfirmed(payment=confirmed), name, when))
        if voided_at is not None:
            self.events.append(
                Event(
                    ev.PaymentVoided(payment=snap(c.PAYMENT_STATUS_VOIDED), reason="bounced"), name, voided_at
                )
            )
        return name


def _ts(when: datetime):
    from google.protobuf.timestamp_pb2 import Timestamp

    ts = Timestamp()
    ts.FromDatetime(when)
    return ts


def envelope_of(event: Event):
    return build_envelope(
        event_id=event.id,
        payload=event.payload,
        source="contract",
        subject=event.resource,
        occurred_at=event.when,
        actor_subject="finance-bot",
    )


async def publish(js, events: list[Event]) -> None:
    """Publish like the contract outbox relay (a new Nats-Msg-Id each time: a re-publish of the same
    event id is a redelivery)."""
    for event in events:
        subject = SUBJECTS[type(event.payload)]
        await js.publish(subject, serialize_envelope(envelope_of(event)), headers={"Nats-Msg-Id": new_id()})


async def publish_customer_event(js, subject: str, payload, resource: str, when: datetime) -> Event:
    event = Event(payload, resource, when)
    envelope = build_envelope(
        event_id=event.id,
        payload=payload,
        source="customer",
        subject=resource,
        occurred_at=when,
        actor_subject="dpo",
    )
    await js.publish(subject, serialize_envelope(envelope), headers={"Nats-Msg-Id": new_id()})
    return event


async def wait_applied(
    app, events: list[Event], seconds: float = WAIT_SECONDS, *, consumer: str = CONSUMER
) -> None:
    inbox = app.uow_factory.tables.inbox
    wanted = {e.id for e in events}
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        async with app.db.read_session() as session:
            seen = set(
                (
                    await session.execute(
                        sa.select(inbox.c.event_id).where(
                            inbox.c.consumer == consumer, inbox.c.event_id.in_(wanted)
                        )
                    )
                ).scalars()
            )
        if seen == wanted:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{len(wanted - seen)} of {len(wanted)} events not applied in {seconds}s")
        await asyncio.sleep(0.1)
