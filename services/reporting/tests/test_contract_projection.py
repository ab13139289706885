"""Contract events published on the real NATS stream CRM_CONTRACT projected by the reporting
service, on SQLite and PostgreSQL: contracts, plans, payments and the money facts other areas
read; a void after a confirm nets to zero; redelivery and out-of-order delivery change nothing."""

from __future__ import annotations

import random
from datetime import date

import pytest
import sqlalchemy as sa
from contract_history import (
    Deal,
    Event,
    at,
    envelope_of,
    publish,
    publish_customer_event,
    the_app,
    uid,
    wait_applied,
)

from crm.contract.v1 import events_pb2 as ev
from crm.customer.v1 import data_events_pb2
from crm.customer.v1 import events_pb2 as customer_events_pb2
from crm_reporting.adapters import contract_queries as queries
from crm_reporting.adapters.contract_tables import report_contracts
from crm_reporting.adapters.projection_tables import timeline
from crm_reporting.projection_registry import build_registry
from crm_reporting.service import contract_projection as cp
from crm_reporting.service.report_scope import ReportScope
from crm_shared.access.policy import Scope, ScopeGrant

pytestmark = pytest.mark.asyncio(loop_scope="session")

D = date(2026, 3, 1)


def scenario(customer: str, owner: str = "rita", team: str = "east") -> tuple[Deal, dict]:
    """Signed 1000 in 3 installments; 300 paid on #1, 200 on #2 (later voided), 100 more on #2."""
    deal = Deal(customer=customer, owner=owner, team=team, amount=1000).signed(at(D))
    deal.set_plan(at(D, 10), [(date(2026, 3, 31), 300), (date(2026, 4, 30), 300), (date(2026, 5, 31), 400)])
    deal.installment_event(ev.PaymentDue, 1, at(date(2026, 3, 24)))
    deal.pay(at(date(2026, 3, 20)), date(2026, 3, 20), [(1, 300)])
    deal.installment_event(ev.InstallmentPaid, 1, at(date(2026, 3, 20), 11))
    deal.pay(at(date(2026, 4, 10)), date(2026, 4, 10), [(2, 200)], voided_at=at(date(2026, 4, 12)))
    deal.pay(at(date(2026, 4, 15)), date(2026, 4, 15), [(2, 100)])
    deal.installment_event(ev.PaymentOverdue, 2, at(date(2026, 5, 1)))
    expected = {
        "lifetime": {"CNY": 400},
        # as of 2026-06-15: #2 has 200 left (overdue), #3 400 (overdue since 06-01).
        "outstanding": {"CNY": 600},
        "overdue": {"CNY": 600},
        "paid": [300, 100, 0],
    }
    return deal, expected


async def money_facts(app, deal: Deal):
    async with app.db.read_session() as session:
        summary = await cp.customer_money_summary(session, deal.customer, as_of=date(2026, 6, 15))
        positions = await queries.installment_positions(
            session, report_contracts.c.name == deal.contract, paid_until=None
        )
        kinds = (
            await session.execute(
                sa.select(timeline.c.kind, sa.func.count())
                .where(timeline.c.customer == deal.customer)
                .group_by(timeline.c.kind)
            )
        ).all()
    return summary, [p.paid for p in sorted(positions, key=lambda p: p.due_date)], dict(kinds)


async def test_signed_contract_plan_and_payments_project_into_money_facts(reporting_service):
    app, js = the_app(reporting_service), reporting_service.infrastructure.js
    deal, expected = scenario(f"customers/{uid()}")
    await publish(js, deal.events)
    await wait_applied(app, deal.events)

    summary, paid, kinds = await money_facts(app, deal)
    assert summary.lifetime_value == expected["lifetime"]
    assert summary.outstanding == expected["outstanding"]
    assert summary.overdue == expected["overdue"]
    assert summary.active_contracts == 1
    assert paid == expected["paid"]
    assert kinds == {"contract_signed": 1, "payment_confirmed": 3, "payment_voided": 1}

    async with app.db.read_session() as session:
        everyone = ReportScope(
            grant=ScopeGrant(Scope.ALL, subject="root", team="hq"),
            start=at(date(2026, 3, 1), 0),
            end=at(date(2026, 5, 1), 0),
            team="",
            owner="",
        )
        by_month = await cp.collected_amounts(session, everyone, group="month")
        history = await cp.payment_history(session, "CNY", until=date(2026, 6, 15))
    # The voided 200 counts for nothing; the others land in their months.
    assert by_month.get(("2026-03", "CNY")) == 300
    assert by_month.get(("2026-04", "CNY")) == 100
    mine = history[deal.customer]
    assert (mine.count, mine.total_minor, mine.overdue_minor) == (2, 400, 600)
    assert mine.first_time.date() == date(2026, 3, 20) and mine.last_time.date() == date(2026, 4, 15)


async def test_a_void_after_a_confirm_nets_to_zero_in_any_order(reporting_service):
    app, js = the_app(reporting_service), reporting_service.infrastructure.js
    deal = Deal(customer=f"customers/{uid()}", owner="olga", team="west", amount=500).signed(at(D))
    deal.set_plan(at(D, 10), [(date(2026, 4, 1), 500)])
    deal.pay(at(date(2026, 3, 5)), date(2026, 3, 5), [(1, 500)], voided_at=at(date(2026, 3, 6)))
    voided, rest = deal.events[-1], deal.events[:-1]
    await publish(js, [voided])  # the void arrives before the payment was even recorded
    await wait_applied(app, [voided])
    await publish(js, rest)
    await wait_applied(app, deal.events)
    summary, paid, _ = await money_facts(app, deal)
    assert summary.lifetime_value == {}
    assert summary.outstanding == {"CNY": 500}
    assert paid == [0]


async def test_redelivery_and_out_of_order_delivery_change_nothing(reporting_service):
    app, js = the_app(reporting_service), reporting_service.infrastructure.js
    in_order, expected = scenario(f"customers/{uid()}")
    shuffled, _ = scenario(f"customers/{uid()}")
    await publish(js, in_order.events)
    events = list(shuffled.events)
    random.Random(7).shuffle(events)
    await publish(js, events)
    await publish(js, list(reversed(events)))  # every event delivered again (same event ids)
    await wait_applied(app, in_order.events + shuffled.events)

    a = await money_facts(app, in_order)
    b = await money_facts(app, shuffled)
    assert a == b
    assert a[0].outstanding == expected["outstanding"] and a[1] == expected["paid"]

    # The handlers themselves (no inbox, as in a replay): applying every event twice more, newest
    # first, changes nothing.
    registry = build_registry(app)
    for event in list(reversed(shuffled.events)) * 2:
        handler = registry.handler_for("contract", type(event.payload))
        async with app.uow_factory() as uow:
            await handler(uow, envelope_of(event), event.payload)
            await uow.commit()
    assert await money_facts(app, shuffled) == b


async def test_an_older_contract_snapshot_never_overwrites_a_newer_one(reporting_service):
    app, js = the_app(reporting_service), reporting_service.infrastructure.js
    deal = Deal(customer=f"customers/{uid()}", owner="rita", team="east", amount=800).signed(at(D))
    created, signed = deal.events
    terminated = deal.snapshot(7)  # CONTRACT_STATUS_TERMINATED
    end = Event(
        ev.ContractTerminated(contract=terminated, reason="breach"), deal.contract, at(date(2026, 5, 1))
    )
    await publish(js, [end, signed, created])
    await wait_applied(app, [end, signed, created])
    async with app.db.read_session() as session:
        row = (
            (
                await session.execute(
                    sa.select(report_contracts).where(report_contracts.c.name == deal.contract)
                )
            )
            .mappings()
            .one()
        )
        summary = await cp.customer_money_summary(session, deal.customer, as_of=date(2026, 6, 1))
    assert row["status"] == "TERMINATED"
    assert (row["customer"], row["owner"], row["team"], row["amount_minor"]) == (
        deal.customer,
        "rita",
        "east",
        800,
    )
    # A terminated contract without a plan still owes its unpaid amount (current).
    assert summary.active_contracts == 0 and summary.outstanding == {"CNY": 800}


async def test_a_merged_customers_contracts_and_later_payments_count_for_the_survivor(reporting_service):
    app, js = the_app(reporting_service), reporting_service.infrastructure.js
    survivor, loser = f"customers/{uid()}", f"customers/{uid()}"
    deal = Deal(customer=loser, owner="rita", team="east", amount=700).signed(at(D))
    deal.set_plan(at(D, 10), [(date(2026, 4, 1), 700)])
    deal.pay(at(date(2026, 3, 2)), date(2026, 3, 2), [(1, 200)])
    await publish(js, deal.events)
    await wait_applied(app, deal.events)
    known = [
        await publish_customer_event(
            js,
            "crm.customer.customer.created",
            customer_events_pb2.CustomerCreated(customer=customer_events_pb2.CustomerSnapshot(name=name)),
            name,
            at(D, 8),
        )
        for name in (survivor, loser)
    ]
    merged = await publish_customer_event(
        js,
        "crm.customer.customer.merged",
        data_events_pb2.CustomerMerged(survivor=survivor, losers=[loser]),
        survivor,
        at(date(2026, 3, 3)),
    )
    await wait_applied(app, [*known, merged], consumer="reporting-customer")
    late = len(deal.events)
    deal.pay(at(date(2026, 3, 4)), date(2026, 3, 4), [(1, 100)])  # published under the loser
    await publish(js, deal.events[late:])
    await wait_applied(app, deal.events)
    async with app.db.read_session() as session:
        kept = await cp.customer_money_summary(session, survivor, as_of=date(2026, 3, 10))
        gone = await cp.customer_money_summary(session, loser, as_of=date(2026, 3, 10))
    assert kept.lifetime_value == {"CNY": 300} and kept.outstanding == {"CNY": 400}
    assert kept.active_contracts == 1
    assert gone.lifetime_value == {} and gone.outstanding == {} and gone.active_contracts == 0
