"""Customer analytics from events on the real NATS, on SQLite and PostgreSQL: customers and payments
published on CRM_CUSTOMER / CRM_CONTRACT become scores (ABC, RFM, health with factors, churn risk);
CustomerScored is published once per change and never for an unchanged score; a rep lists only
their own customers' scores; GetCustomerAnalytics equals values computed by hand for a small
population."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
import sqlalchemy as sa
from contract_history import Deal, publish
from google.protobuf.timestamp_pb2 import Timestamp

from crm.customer.v1 import customer_pb2
from crm.customer.v1 import events_pb2 as customer_events
from crm.reporting.v1 import common_pb2, export_service_pb2
from crm.reporting.v1 import customer_insight_service_pb2 as rpc
from crm.reporting.v1 import customer_insight_service_pb2_grpc as rpc_grpc
from crm.reporting.v1 import events_pb2 as reporting_events
from crm_reporting.domain import analytics as rules
from crm_reporting.service import analytics
from crm_shared import timers
from crm_shared.events.envelope import build_envelope, serialize_envelope, unpack_payload
from crm_shared.ids import new_id
from crm_shared.principal import Principal
from crm_shared.testing.events import stream_envelopes

pytestmark = pytest.mark.asyncio(loop_scope="session")

WAIT_SECONDS = 30.0
A, B, C = common_pb2.ABC_CLASS_A, common_pb2.ABC_CLASS_B, common_pb2.ABC_CLASS_C


def the_app(reporting_service):
    [worker] = [w for w in reporting_service.parts.workers if getattr(w, "source", None) == "customer"]
    return worker.app


def customer_name() -> str:
    return f"customers/{uuid.uuid4()}"


def ts(when: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(when)
    return out


async def create_customer(js, name: str, *, owner: str, team: str, when: datetime) -> str:
    """CustomerCreated on CRM_CUSTOMER like the customer service's relay; returns the event id."""
    snapshot = customer_events.CustomerSnapshot(
        name=name,
        kind=customer_pb2.CUSTOMER_KIND_COMPANY,
        display_name="Acme",
        lifecycle_stage=customer_pb2.LIFECYCLE_STAGE_ACTIVE,
        owner=owner,
        team=team,
        create_time=ts(when),
        update_time=ts(when),
    )
    return await publish_customer_event(
        js, customer_events.CustomerCreated(customer=snapshot), "crm.customer.customer.created", name, when
    )


async def publish_customer_event(js, payload, subject: str, resource: str, when: datetime) -> str:
    event_id = new_id()
    envelope = build_envelope(
        event_id=event_id,
        payload=payload,
        source="customer",
        subject=resource,
        occurred_at=when,
        actor_subject="x",
    )
    await js.publish(subject, serialize_envelope(envelope), headers={"Nats-Msg-Id": new_id()})
    return event_id


async def wait_applied(app, consumer: str, ids: set[str]) -> None:
    inbox = app.uow_factory.tables.inbox
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while True:
        async with app.db.read_session() as session:
            seen = set(
                (
                    await session.execute(
                        sa.select(inbox.c.event_id).where(
                            inbox.c.consumer == consumer, inbox.c.event_id.in_(ids)
                        )
                    )
                ).scalars()
            )
        if seen == ids:
            return
        assert asyncio.get_running_loop().time() < deadline, f"{len(ids - seen)} events not applied"
        await asyncio.sleep(0.1)


async def scored_events(js, customers) -> dict[str, list[reporting_events.CustomerScored]]:
    found: dict[str, list] = {c: [] for c in customers}
    for _, envelope in await stream_envelopes(js, "CRM_REPORTING", "crm.reporting.customer.scored"):
        if envelope.subject in found:
            found[envelope.subject].append(unpack_payload(envelope, reporting_events.CustomerScored))
    return found


def key(event) -> tuple:
    return (event.abc_class, event.rfm_segment, event.health_score, event.churn_risk)


async def population(reporting_service):
    """rita (east) owns five customers, olga (west) one; CNY payments 8000/1500/400/100/0 and 500."""
    app, js = the_app(reporting_service), reporting_service.infrastructure.js
    now = datetime.now(UTC).replace(microsecond=0)
    created = now - timedelta(hours=2)
    rita = [customer_name() for _ in range(5)]
    olga = customer_name()
    customer_ids = set()
    for name in rita:
        customer_ids.add(await create_customer(js, name, owner="rita", team="east", when=created))
    customer_ids.add(await create_customer(js, olga, owner="olga", team="west", when=created))
    await wait_applied(app, "reporting-customer", customer_ids)
    deals = []
    for name, amount, owner, team in [
        (rita[0], 8000, "rita", "east"),
        (rita[1], 1500, "rita", "east"),
        (rita[2], 400, "rita", "east"),
        (rita[3], 100, "rita", "east"),
        (olga, 500, "olga", "west"),
    ]:
        deal = Deal(customer=name, owner=owner, team=team, amount=amount).signed(now - timedelta(minutes=50))
        deal.pay(now - timedelta(minutes=30), now.date(), [(None, amount)])
        deals.append(deal)
    events = [e for d in deals for e in d.events]
    await publish(js, events)
    await wait_applied(app, "reporting-contract", {e.id for e in events})
    await rerank_now(app)
    return app, js, rita, olga, events, now


async def rerank_now(app) -> int:
    """Run the pending (debounced) ABC/RFM pass now instead of waiting for its timer."""
    async with app.uow_factory() as uow:
        changed = await analytics.rerank(uow)
        await uow.commit()
    return changed


async def test_scores_events_scope_and_analytics(reporting_service, channel, as_user):
    app, js, rita, olga, _, _ = await population(reporting_service)
    everyone = [*rita, olga]
    stub = rpc_grpc.CustomerInsightServiceStub(channel)

    # Stored scores: ABC over all six customers (10500): 8000 (0 % before) A, 1500 (76 %) A,
    # 500 (90 %) B, 400 and 100 (95 %+) C, no revenue C.
    response = await stub.ListCustomerScores(
        rpc.ListCustomerScoresRequest(page_size=50), metadata=as_user("admin", "root", "hq")
    )
    scores = {s.customer: s for s in response.scores if s.customer in everyone}
    assert set(scores) == set(everyone)
    assert {c: scores[c].abc_class for c in everyone} == {
        rita[0]: A,
        rita[1]: A,
        olga: B,
        rita[2]: C,
        rita[3]: C,
        rita[4]: C,
    }
    for score in scores.values():
        assert 0 <= score.health_score <= 100
        assert score.health_score == rules.BASE_HEALTH + sum(f.impact for f in score.factors)
        assert score.churn_risk == int(rules.churn_risk(score.health_score))
        assert {f.name for f in score.factors} >= {"recency", "overdue_payments"}
    # One payment each, all today: equal recency/frequency; the non-buyer created recently is "new".
    assert scores[rita[4]].rfm_segment == "new"
    assert scores[rita[0]].monetary_score == 5 and scores[rita[3]].monetary_score == 1
    # Least healthy first by default.
    healths = [s.health_score for s in response.scores]
    assert healths == sorted(healths)

    # CustomerScored: one per change — consecutive events of a customer always differ, and the
    # last one is the stored score.
    published = await scored_events(js, everyone)
    for customer in everyone:
        events = published[customer]
        assert events, customer
        assert all(key(a) != key(b) for a, b in itertools.pairwise(events))
        assert key(events[-1]) == (
            scores[customer].abc_class,
            scores[customer].rfm_segment,
            scores[customer].health_score,
            scores[customer].churn_risk,
        )

    # A rep sees only their own customers' scores; asking for someone else's numbers is denied.
    mine = await stub.ListCustomerScores(
        rpc.ListCustomerScoresRequest(page_size=50), metadata=as_user("sales_rep", "rita", "east")
    )
    assert {s.customer for s in mine.scores} == set(rita)
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await stub.GetCustomerAnalytics(
            rpc.GetCustomerAnalyticsRequest(query=common_pb2.ReportQuery(owner="olga"), currency_code="CNY"),
            metadata=as_user("sales_rep", "rita", "east"),
        )
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED

    # Analytics over rita's five (10000 CNY): A = 8000 (80 %), B = 1500, C = 400 + 100 + 0;
    # the top 20 % (1 customer) hold 80 %; nobody churned.
    report = await stub.GetCustomerAnalytics(
        rpc.GetCustomerAnalyticsRequest(query=common_pb2.ReportQuery(owner="rita"), currency_code="CNY"),
        metadata=as_user("sales_rep", "rita", "east"),
    )
    abc = {a.abc_class: (a.customers, a.revenue.amount_minor, a.revenue_share_bp) for a in report.abc}
    assert abc == {A: (1, 8000, 8000), B: (1, 1500, 1500), C: (3, 500, 500)}
    assert report.top_20_percent_revenue_share_bp == 8000
    assert report.customers == 5
    assert {s.segment: s.customers for s in report.lifecycle_stages} == {"active": 5}
    assert sum(s.customers for s in report.rfm_segments) == 5
    assert sum(s.customers for s in report.churn_risks) == 5
    assert report.churn_rate_bp == 0
    expected_average = sum(scores[c].health_score for c in rita) / 5
    assert report.average_health_score == pytest.approx(expected_average)

    # The CSV export rows of CUSTOMER_SCORES are the rep's customers, least healthy first.
    async with app.db.read_session() as session:
        principal = Principal(subject="rita", roles=frozenset({"sales_rep"}), team="east")
        header, rows = await analytics.export_rows(
            session,
            app,
            principal,
            export_service_pb2.REPORT_KIND_CUSTOMER_SCORES,
            common_pb2.ReportQuery(),
            "",
        )
    assert header[0] == "customer" and {r[0] for r in rows} == set(rita)
    assert [r[8] for r in rows] == sorted(r[8] for r in rows)


async def test_an_unchanged_score_is_not_published_again(reporting_service):
    app, js, rita, _, events, now = await population(reporting_service)
    before = await scored_events(js, rita)
    # Every contract event again (redelivery: same event ids) and an identical customer snapshot.
    await publish(js, events)
    snapshot = customer_events.CustomerSnapshot(
        name=rita[4],
        kind=customer_pb2.CUSTOMER_KIND_COMPANY,
        display_name="Acme",
        lifecycle_stage=customer_pb2.LIFECYCLE_STAGE_ACTIVE,
        owner="rita",
        team="east",
        create_time=ts(now - timedelta(hours=2)),
        update_time=ts(now - timedelta(hours=2)),
    )
    event_id = await publish_customer_event(
        js,
        customer_events.CustomerUpdated(customer=snapshot),
        "crm.customer.customer.updated",
        rita[4],
        now - timedelta(minutes=10),
    )
    await wait_applied(app, "reporting-customer", {event_id})
    await asyncio.sleep(1.0)  # let the outbox relay publish anything it would
    after = await scored_events(js, rita)
    assert {c: len(v) for c, v in after.items()} == {c: len(v) for c, v in before.items()}


async def test_the_daily_timer_rescores_everybody_and_schedules_the_next_day(reporting_service):
    app, _, rita, olga, _, now = await population(reporting_service)
    due = now + timedelta(days=40)  # nobody active for 40 days: recency and trend drop
    async with app.uow_factory.read_session() as session:
        before = {c: await analytics.score_of(session, c) for c in [*rita, olga]}
        pending = await timers.get_timer(
            session, app.uow_factory.tables, analytics.DAILY_TIMER, analytics.DAILY_KEY
        )
    assert pending is not None and pending.due_at > now
    async with app.uow_factory() as uow:
        await analytics.daily(uow, timers.Timer(analytics.DAILY_TIMER, analytics.DAILY_KEY, due))
        await uow.commit()
    async with app.uow_factory.read_session() as session:
        after = {c: await analytics.score_of(session, c) for c in [*rita, olga]}
        pending = await timers.get_timer(
            session, app.uow_factory.tables, analytics.DAILY_TIMER, analytics.DAILY_KEY
        )
    assert pending is not None and pending.due_at > due
    for customer, score in after.items():
        assert score.compute_time == due
        recency = next(f for f in score.factors if f["name"] == "recency")
        assert recency["value"] >= 39 and recency["impact"] <= 0
        assert score.health_score < before[customer].health_score
        # Ranks do not move with time alone.
        assert score.abc_class == before[customer].abc_class


async def test_a_deleted_customer_is_no_longer_scored(reporting_service):
    app, js, rita, _, _, now = await population(reporting_service)
    deleted = await publish_customer_event(
        js,
        customer_events.CustomerDeleted(customer=rita[3], owner="rita", team="east"),
        "crm.customer.customer.deleted",
        rita[3],
        now - timedelta(minutes=5),
    )
    await wait_applied(app, "reporting-customer", {deleted})
    async with app.uow_factory() as uow:  # the next daily pass does not bring it back
        await analytics.daily(uow, timers.Timer(analytics.DAILY_TIMER, analytics.DAILY_KEY, now))
        await uow.commit()
    async with app.uow_factory.read_session() as session:
        assert await analytics.score_of(session, rita[3]) is None
        assert await analytics.score_of(session, rita[2]) is not None


async def test_the_rerank_timer_ranks_after_payments_and_keeps_its_deadline(reporting_service, monkeypatch):
    """The debounced pass runs on the live service's timer scheduler (no direct call), and a pending
    pass keeps its deadline when more payments arrive (steady load cannot postpone it)."""
    app, js = the_app(reporting_service), reporting_service.infrastructure.js
    monkeypatch.setattr(analytics, "RERANK_DELAY", timedelta(seconds=1))
    now = datetime.now(UTC).replace(microsecond=0)
    big, small = customer_name(), customer_name()
    ids = {
        await create_customer(js, c, owner="rita", team="east", when=now - timedelta(hours=1))
        for c in (big, small)
    }
    await wait_applied(app, "reporting-customer", ids)
    deals = []
    for name, amount in ((big, 9000), (small, 100)):
        deal = Deal(customer=name, owner="rita", team="east", amount=amount).signed(
            now - timedelta(minutes=20)
        )
        deal.pay(now - timedelta(minutes=10), now.date(), [(None, amount)])
        deals.append(deal)
    first = deals[0].events
    await publish(js, first)
    await wait_applied(app, "reporting-contract", {e.id for e in first})
    async with app.uow_factory.read_session() as session:
        pending = await timers.get_timer(
            session, app.uow_factory.tables, analytics.RERANK_TIMER, analytics.RERANK_KEY
        )
    await publish(js, deals[1].events)
    await wait_applied(app, "reporting-contract", {e.id for e in deals[1].events})
    async with app.uow_factory.read_session() as session:
        again = await timers.get_timer(
            session, app.uow_factory.tables, analytics.RERANK_TIMER, analytics.RERANK_KEY
        )
    if pending is not None and again is not None:
        assert again.due_at == pending.due_at  # not moved by the later payment
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while True:
        async with app.uow_factory.read_session() as session:
            scores = {c: await analytics.score_of(session, c) for c in (big, small)}
        if scores[big] and scores[big].abc_class == A and scores[big].rfm_segment != "new":
            break
        assert asyncio.get_running_loop().time() < deadline, "the rerank timer did not rank the payers"
        await asyncio.sleep(0.2)
