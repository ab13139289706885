"""Installment timers driven by a ManualClock, on SQLite and PostgreSQL with real NATS.

PaymentDue goes out at due_date - remind_before_days 00:00 UTC (not before), PaymentOverdue
at due_date + 1 day 00:00 UTC; each once however often the timers run, and neither for an
installment paid in time. Reads show OVERDUE as soon as the day has passed, before any timer.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import grpc
import pytest
from contract_testkit import contract_settings
from google.type import date_pb2
from payment_support import eur, events_about, make_contract, payment_request

from crm.contract.v1 import common_pb2 as cpb
from crm.contract.v1 import contract_service_pb2 as cs_pb
from crm.contract.v1 import contract_service_pb2_grpc as cs_grpc
from crm.contract.v1 import events_pb2
from crm.contract.v1 import payment_service_pb2 as pb
from crm.contract.v1 import payment_service_pb2_grpc as pb_grpc
from crm_contract.bootstrap import build
from crm_shared.clock import ManualClock
from crm_shared.runtime import start_service
from crm_shared.timers import TimerScheduler

pytestmark = pytest.mark.asyncio(loop_scope="session")


def d(value: date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


async def test_due_and_overdue_fire_at_their_moment_once_and_not_for_paid_installments(
    database_url, nats_server, jwt_keys, as_user
):
    clock = ManualClock(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))
    running = await start_service(
        contract_settings(database_url, nats_server.url, jwt_keys), build, clock=clock
    )
    try:
        scheduler = next(w for w in running.parts.workers if isinstance(w, TimerScheduler))
        finance = as_user("finance", "fiona", "")
        async with grpc.aio.insecure_channel(running.address) as channel:
            payments, contracts = pb_grpc.PaymentServiceStub(channel), cs_grpc.ContractServiceStub(channel)
            contract = await make_contract(running, amount=300_00)
            await payments.SetPaymentPlan(
                pb.SetPaymentPlanRequest(
                    name=f"{contract}/paymentPlan",
                    installments=[
                        pb.Installment(
                            due_date=d(date(2026, 3, 31)), amount=eur(100_00), remind_before_days=5
                        ),
                        pb.Installment(due_date=d(date(2026, 3, 20)), amount=eur(200_00)),  # default: 7 days
                    ],
                ),
                metadata=finance,
            )
            first, second = f"{contract}/installments/1", f"{contract}/installments/2"  # 03-20, then 03-31

            # The one due 03-20 is paid in time: nothing is ever published about it but InstallmentPaid.
            clock.set(datetime(2026, 3, 10, 12, 0, tzinfo=UTC))
            await payments.RecordPayment(
                payment_request(contract, 200_00, received=date(2026, 3, 10)), metadata=finance
            )

            clock.set(datetime(2026, 3, 25, 23, 59, tzinfo=UTC))
            await scheduler.run_due()
            assert await events_about(nats_server.url, second, count=0, type_suffix="PaymentDue") == []

            clock.set(datetime(2026, 3, 26, 0, 0, tzinfo=UTC))  # 03-31 minus 5 days
            await scheduler.run_due()
            await scheduler.run_due()
            due = await events_about(nats_server.url, second, count=1, type_suffix="PaymentDue")
            assert len(due) == 1
            event = events_pb2.PaymentDue()
            due[0].payload.Unpack(event)
            assert event.days_until_due == 5 and event.installment.amount == eur(100_00)

            # 03-31 is the last day to pay; on 04-01 reads say OVERDUE even before the timer ran.
            clock.set(datetime(2026, 4, 1, 0, 0, tzinfo=UTC))
            plan = await payments.GetPaymentPlan(
                pb.GetPaymentPlanRequest(name=f"{contract}/paymentPlan"), metadata=finance
            )
            assert [i.status for i in plan.installments] == [
                cpb.INSTALLMENT_STATUS_PAID,
                cpb.INSTALLMENT_STATUS_OVERDUE,
            ]
            assert plan.installments[1].days_overdue == 1
            await scheduler.run_due()
            clock.set(datetime(2026, 4, 2, 0, 0, tzinfo=UTC))
            await scheduler.run_due()
            overdue = await events_about(nats_server.url, second, count=1, type_suffix="PaymentOverdue")
            assert len(overdue) == 1
            got = await contracts.GetContract(cs_pb.GetContractRequest(name=contract), metadata=finance)
            assert (got.balance.outstanding.amount_minor, got.balance.overdue.amount_minor) == (
                100_00,
                100_00,
            )
            listed = await payments.ListInstallments(
                pb.ListInstallmentsRequest(
                    parent="contracts/-",
                    filter=f'status = INSTALLMENT_STATUS_OVERDUE AND contract = "{contract}"',
                ),
                metadata=finance,
            )
            assert [i.name for i in listed.installments] == [second]

            paid_events = await events_about(nats_server.url, first, count=1)
            assert [e.type for e in paid_events] == ["crm.contract.v1.InstallmentPaid"]

            # Paying the overdue one brings the contract's overdue back to zero.
            await payments.RecordPayment(
                payment_request(contract, 100_00, received=date(2026, 4, 2)), metadata=finance
            )
            got = await contracts.GetContract(cs_pb.GetContractRequest(name=contract), metadata=finance)
            assert (got.balance.outstanding.amount_minor, got.balance.overdue.amount_minor) == (0, 0)
    finally:
        await running.stop(1)
