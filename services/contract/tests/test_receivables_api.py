"""ListReceivables through a real gRPC channel, on SQLite and PostgreSQL: aging buckets on known
dates, per currency, grouped and paged, totals over every group, and the data scope."""

from __future__ import annotations

from datetime import date

import pytest
from payment_support import day, eur, make_contract, payment_request, set_status

from crm.common.v1.money_pb2 import Money
from crm.contract.v1 import payment_service_pb2 as pay_pb
from crm.contract.v1 import payment_service_pb2_grpc as pay_grpc
from crm.contract.v1 import receivable_service_pb2 as pb
from crm.contract.v1 import receivable_service_pb2_grpc as pb_grpc
from crm_contract.domain.contracts import ContractStatus

pytestmark = pytest.mark.asyncio(loop_scope="session")

AS_OF = date(2026, 6, 30)


def buckets(group) -> tuple[int, ...]:
    b = group.buckets
    return tuple(
        m.amount_minor
        for m in (b.current, b.days_1_30, b.days_31_60, b.days_61_90, b.days_over_90, b.total, b.overdue)
    )


async def test_aging_by_owner_customer_and_contract_with_scope(channel, contract_service, as_user):
    finance = as_user("finance", "fiona", "")
    payments, receivables = pay_grpc.PaymentServiceStub(channel), pb_grpc.ReceivableServiceStub(channel)
    aged = await make_contract(contract_service, amount=1000_00, owner="ann", customer="customers/acme")
    await payments.SetPaymentPlan(
        pay_pb.SetPaymentPlanRequest(
            name=f"{aged}/paymentPlan",
            installments=[
                pay_pb.Installment(due_date=day(due), amount=eur(amount))
                for due, amount in [
                    (date(2026, 7, 15), 100_00),  # not yet due: current
                    (date(2026, 6, 20), 200_00),  # 10 days past due: 1-30
                    (date(2026, 5, 15), 300_00),  # 46 days: 31-60
                    (date(2026, 4, 10), 150_00),  # 81 days: 61-90
                    (date(2026, 3, 1), 250_00),  # 121 days: over 90
                ]
            ],
        ),
        metadata=finance,
    )
    oldest = f"{aged}/installments/1"
    await payments.RecordPayment(
        payment_request(aged, 50_00, received=date(2026, 3, 5), allocations=[(oldest, 50_00)]),
        metadata=finance,
    )
    await make_contract(contract_service, amount=400_00, owner="ben", customer="customers/acme")  # no plan
    await make_contract(
        contract_service, amount=100_00, owner="ann", currency="USD", customer="customers/zed"
    )
    await make_contract(contract_service, amount=999_00, owner="ann", status=ContractStatus.DRAFT)
    ended = await make_contract(contract_service, amount=70_00, owner="cid", team="west")
    await payments.SetPaymentPlan(
        pay_pb.SetPaymentPlanRequest(
            name=f"{ended}/paymentPlan",
            installments=[pay_pb.Installment(due_date=day(date(2026, 6, 29)), amount=eur(70_00))],
        ),
        metadata=finance,
    )
    await set_status(contract_service, ended, ContractStatus.TERMINATED)

    by_owner = await receivables.ListReceivables(
        pb.ListReceivablesRequest(as_of=day(AS_OF), group_by=pb.RECEIVABLE_GROUPING_OWNER), metadata=finance
    )
    assert [(g.key, g.currency_code, buckets(g)) for g in by_owner.groups] == [
        ("ann", "EUR", (100_00, 200_00, 300_00, 150_00, 200_00, 950_00, 850_00)),
        ("ben", "EUR", (400_00, 0, 0, 0, 0, 400_00, 0)),
        ("ann", "USD", (100_00, 0, 0, 0, 0, 100_00, 0)),
        ("cid", "EUR", (0, 70_00, 0, 0, 0, 70_00, 70_00)),
    ]
    assert (by_owner.groups[0].open_installments, by_owner.groups[0].overdue_installments) == (5, 4)
    assert [(t.currency_code, t.buckets.total, t.buckets.overdue) for t in by_owner.totals] == [
        ("EUR", eur(1420_00), eur(920_00)),
        ("USD", Money(currency_code="USD", amount_minor=100_00), Money(currency_code="USD", amount_minor=0)),
    ]
    assert by_owner.as_of == day(AS_OF)

    by_customer = await receivables.ListReceivables(
        pb.ListReceivablesRequest(
            as_of=day(AS_OF), group_by=pb.RECEIVABLE_GROUPING_CUSTOMER, filter='currency_code = "EUR"'
        ),
        metadata=finance,
    )
    assert [(g.key, g.buckets.total.amount_minor) for g in by_customer.groups][:1] == [
        ("customers/acme", 1350_00)
    ]
    assert [g.currency_code for g in by_customer.groups] == ["EUR", "EUR"]  # acme, and the ended contract's

    first_page = await receivables.ListReceivables(
        pb.ListReceivablesRequest(as_of=day(AS_OF), group_by=pb.RECEIVABLE_GROUPING_CONTRACT, page_size=2),
        metadata=finance,
    )
    second_page = await receivables.ListReceivables(
        pb.ListReceivablesRequest(
            as_of=day(AS_OF),
            group_by=pb.RECEIVABLE_GROUPING_CONTRACT,
            page_size=2,
            page_token=first_page.next_page_token,
        ),
        metadata=finance,
    )
    assert first_page.groups[0].key == aged and len(first_page.groups) == 2 and len(second_page.groups) == 2
    assert not second_page.next_page_token and first_page.totals == second_page.totals

    # Scope: a rep sees their own; a manager their team; the same buckets either way.
    ann = await receivables.ListReceivables(
        pb.ListReceivablesRequest(as_of=day(AS_OF)), metadata=as_user("sales_rep", "ann", "east")
    )
    assert [(g.key, g.currency_code) for g in ann.groups] == [("ann", "EUR"), ("ann", "USD")]
    west = await receivables.ListReceivables(
        pb.ListReceivablesRequest(as_of=day(AS_OF)), metadata=as_user("sales_manager", "will", "west")
    )
    assert [(g.key, buckets(g)[-2]) for g in west.groups] == [("cid", 70_00)]
