"""The sales read model from events published on the real NATS stream CRM_SALES, on SQLite and
PostgreSQL: the rows equal what the events say; redelivered events change nothing; events that
arrive out of order (older snapshots late, stage changes reversed) end in the same state."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from google.protobuf.timestamp_pb2 import Timestamp

from crm.common.v1.money_pb2 import Money
from crm.sales.v1 import common_pb2 as sales_common
from crm.sales.v1 import events_pb2 as ev
from crm_reporting.adapters.sales_tables import (
    sales_campaigns,
    sales_leads,
    sales_opportunities,
    sales_order_lines,
    sales_stage_intervals,
)
from crm_reporting.consumers import ProjectionConsumer
from crm_reporting.service import sales_projection, timeline
from crm_shared.events.envelope import build_envelope, serialize_envelope
from crm_shared.ids import new_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

WAIT_SECONDS = 20.0
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
# Marker leads are created long before any report period.
MARKER_TIME = datetime(2000, 1, 1, tzinfo=UTC)

SUBJECTS = {
    ev.LeadCreated: "crm.sales.lead.created",
    ev.LeadAssigned: "crm.sales.lead.assigned",
    ev.LeadConverted: "crm.sales.lead.converted",
    ev.LeadDisqualified: "crm.sales.lead.disqualified",
    ev.OpportunityCreated: "crm.sales.opportunity.created",
    ev.OpportunityStageChanged: "crm.sales.opportunity.stage_changed",
    ev.OpportunityUpdated: "crm.sales.opportunity.updated",
    ev.OpportunityWon: "crm.sales.opportunity.won",
    ev.OpportunityLost: "crm.sales.opportunity.lost",
    ev.OpportunityDeleted: "crm.sales.opportunity.deleted",
    ev.QuoteAccepted: "crm.sales.quote.accepted",
    ev.OrderCreated: "crm.sales.order.created",
    ev.CampaignCreated: "crm.sales.campaign.created",
    ev.CampaignUpdated: "crm.sales.campaign.updated",
}


def ts(moment: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(moment)
    return t


def cny(amount: int) -> Money:
    return Money(currency_code="CNY", amount_minor=amount)


def uid(prefix: str) -> str:
    return f"{prefix}/{uuid.uuid4()}"


def the_app(reporting_service):
    [worker] = [
        w
        for w in reporting_service.parts.workers
        if isinstance(w, ProjectionConsumer) and w.source == "sales"
    ]
    return worker.app


class SalesHistory:
    """Publishes sales events like the sales outbox relay; remembers them to publish them again."""

    def __init__(self, js) -> None:
        self.js = js
        self.published: list[tuple[str, bytes]] = []

    async def publish(self, payload, resource: str, at: datetime, *, event_id: str | None = None) -> str:
        event_id = event_id or new_id()
        envelope = build_envelope(
            event_id=event_id,
            payload=payload,
            source="sales",
            subject=resource,
            occurred_at=at,
            actor_subject="seller",
        )
        data = serialize_envelope(envelope)
        subject = SUBJECTS[type(payload)]
        self.published.append((subject, data))
        await self.js.publish(subject, data, headers={"Nats-Msg-Id": new_id()})
        return event_id

    async def republish_all(self) -> None:
        """Every event again, as new messages with the same event ids (a redelivery / replay)."""
        for subject, data in list(self.published):
            await self.js.publish(subject, data, headers={"Nats-Msg-Id": new_id()})

    # --- convenience builders ---
    async def lead(
        self, name: str, at: datetime, *, owner: str, team: str, channel=1, platform="", campaign=""
    ):
        snap = ev.LeadSnapshot(
            name=name,
            source_channel=channel,
            source_platform=platform,
            campaign=campaign,
            owner=owner,
            team=team,
            create_time=ts(at),
        )
        await self.publish(ev.LeadCreated(lead=snap), name, at)
        return snap

    async def marker(self) -> str:
        """A lead published last: when it is projected, everything before it on the stream is too."""
        name = uid("leads")
        await self.lead(name, MARKER_TIME, owner="marker", team="marker")
        return name


def opportunity(
    name: str,
    *,
    customer: str,
    stage: str,
    amount: int,
    owner: str,
    team: str,
    created: datetime,
    pipeline: str = "pipelines/main",
    probability: int = 10,
    category=sales_common.FORECAST_CATEGORY_PIPELINE,
    close: datetime | None = None,
    lead: str = "",
    campaign: str = "",
) -> ev.OpportunitySnapshot:
    return ev.OpportunitySnapshot(
        name=name,
        customer=customer,
        pipeline=pipeline,
        stage=f"{pipeline}/stages/{stage}",
        amount=cny(amount),
        probability=probability,
        weighted_amount=cny(amount * probability // 100),
        expected_close_time=ts(close or created + timedelta(days=30)),
        forecast_category=category,
        owner=owner,
        team=team,
        source_lead=lead,
        campaign=campaign,
        create_time=ts(created),
    )


async def eventually(check, seconds: float = WAIT_SECONDS):
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.1)


async def projected(app, lead_name: str) -> bool:
    async def seen():
        async with app.db.read_session() as session:
            found = await session.execute(
                sa.select(sales_leads.c.name).where(sales_leads.c.name == lead_name)
            )
            return found.first() is not None

    return bool(await eventually(seen))


async def table_rows(app) -> dict[str, list[tuple]]:
    """Every sales read-model table, sorted (the comparable state of the projection)."""
    tables = (sales_leads, sales_opportunities, sales_stage_intervals, sales_order_lines, sales_campaigns)
    result = {}
    async with app.db.read_session() as session:
        for table in tables:
            rows = (await session.execute(sa.select(table))).all()
            result[table.name] = sorted(tuple(r) for r in rows)
    return result


async def publish_history(h: SalesHistory) -> tuple:
    """Campaign, lead, converted opportunity moved twice and won, an order, a deleted opportunity."""
    lead, opp, customer = uid("leads"), uid("opportunities"), uid("customers")
    campaign = uid("campaigns")
    t1, t2, t3 = T0 + timedelta(days=2), T0 + timedelta(days=5), T0 + timedelta(days=9)

    await h.publish(
        ev.CampaignCreated(
            campaign=ev.CampaignSnapshot(
                name=campaign, display_name="Fair", channel="EVENT", budget=cny(90_000)
            )
        ),
        campaign,
        T0 - timedelta(days=1),
    )
    await h.publish(
        ev.CampaignUpdated(
            campaign=ev.CampaignSnapshot(
                name=campaign, display_name="Fair", channel="EVENT", budget=cny(120_000), status="ACTIVE"
            ),
            changed_fields=["budget", "status"],
        ),
        campaign,
        T0 - timedelta(hours=1),
    )
    snap = await h.lead(
        lead,
        T0,
        owner="rita",
        team="east",
        channel=sales_common.LEAD_SOURCE_CHANNEL_THIRD_PARTY,
        platform="baidu",
        campaign=campaign,
    )
    await h.publish(
        ev.LeadConverted(lead=snap, customer=customer, opportunity=opp), lead, T0 + timedelta(hours=2)
    )
    base = dict(
        customer=customer,
        amount=50_000,
        owner="rita",
        team="east",
        created=T0 + timedelta(hours=2),
        lead=lead,
    )
    await h.publish(
        ev.OpportunityCreated(opportunity=opportunity(opp, stage="qualify", **base)),
        opp,
        T0 + timedelta(hours=2),
    )
    moved = opportunity(opp, stage="propose", **base)
    await h.publish(
        ev.OpportunityStageChanged(
            opportunity=moved,
            from_stage="pipelines/main/stages/qualify",
            to_stage=moved.stage,
            change_time=ts(t1),
        ),
        opp,
        t1,
    )
    bigger = opportunity(opp, stage="propose", **{**base, "amount": 80_000})
    await h.publish(ev.OpportunityUpdated(opportunity=bigger, changed_fields=["amount"]), opp, t2)
    won = opportunity(opp, stage="won", **{**base, "amount": 80_000, "probability": 100})
    await h.publish(ev.OpportunityWon(opportunity=won, won_time=ts(t3)), opp, t3)
    order = uid("orders")
    await h.publish(
        ev.OrderCreated(
            order=order,
            customer=customer,
            total=cny(90_400),
            owner="rita",
            team="east",
            lines=[
                ev.OrderLineSnapshot(
                    product="products/a", sku="A", quantity=2, amount=cny(56_500), net_amount=cny(50_000)
                ),
                ev.OrderLineSnapshot(
                    product="products/b", sku="B", quantity=1, amount=cny(33_900), net_amount=cny(30_000)
                ),
            ],
        ),
        order,
        t3 + timedelta(hours=1),
    )
    gone = uid("opportunities")
    await h.publish(ev.OpportunityCreated(opportunity=opportunity(gone, stage="qualify", **base)), gone, t1)
    await h.publish(
        ev.OpportunityDeleted(opportunity=gone, customer=customer, owner="rita", team="east"), gone, t2
    )
    return lead, opp, customer, campaign, order, gone, t1, t3


async def test_projection_equals_the_events_and_redelivery_changes_nothing(reporting_service):
    app, js = the_app(reporting_service), reporting_service.infrastructure.js
    h = SalesHistory(js)
    lead, opp, customer, campaign, order, gone, t1, t3 = await publish_history(h)
    assert await projected(app, await h.marker())

    rows = await table_rows(app)
    async with app.db.read_session() as session:
        o = (
            (await session.execute(sa.select(sales_opportunities).where(sales_opportunities.c.name == opp)))
            .mappings()
            .one()
        )
        lead_row = (
            (await session.execute(sa.select(sales_leads).where(sales_leads.c.name == lead))).mappings().one()
        )
        intervals = (
            await session.execute(
                sa.select(
                    sales_stage_intervals.c.stage,
                    sales_stage_intervals.c.entered_at,
                    sales_stage_intervals.c.left_at,
                )
                .where(sales_stage_intervals.c.opportunity == opp)
                .order_by(sales_stage_intervals.c.entered_at)
            )
        ).all()
        summary = await sales_projection.customer_sales_summary(session, customer)
        kinds = sorted(e.kind for e in await timeline.entries(session, customer))
        camp = (
            (await session.execute(sa.select(sales_campaigns).where(sales_campaigns.c.name == campaign)))
            .mappings()
            .one()
        )
        lines = (
            await session.execute(
                sa.select(sales_order_lines.c.product, sales_order_lines.c.net_minor)
                .where(sales_order_lines.c.order_name == order)
                .order_by(sales_order_lines.c.line_no)
            )
        ).all()
        deleted = (
            await session.execute(
                sa.select(sales_opportunities.c.deleted).where(sales_opportunities.c.name == gone)
            )
        ).scalar()

    assert (lead_row["channel"], lead_row["source"], lead_row["campaign"]) == (
        "THIRD_PARTY",
        "baidu",
        campaign,
    )
    assert (lead_row["owner"], lead_row["team"], lead_row["customer"], lead_row["opportunity"]) == (
        "rita",
        "east",
        customer,
        opp,
    )
    assert lead_row["create_time"] == T0 and lead_row["convert_time"] == T0 + timedelta(hours=2)
    assert (o["status"], o["stage"], o["amount_minor"], o["currency"], o["probability"]) == (
        "won",
        "pipelines/main/stages/won",
        80_000,
        "CNY",
        100,
    )
    assert (o["owner"], o["team"], o["customer"], o["source_lead"]) == ("rita", "east", customer, lead)
    assert o["won_time"] == t3 and o["close_month"] == "2026-03"
    assert o["cycle_seconds"] == (t3 - (T0 + timedelta(hours=2))).total_seconds()
    assert [(s.rsplit("/", 1)[1], e, left) for s, e, left in intervals] == [
        ("qualify", T0 + timedelta(hours=2), t1),
        ("propose", t1, t3),
        ("won", t3, None),
    ]
    assert (summary.open_opportunities, summary.won_opportunities, summary.open_pipeline) == (0, 1, {})
    assert kinds == ["opportunity_created", "opportunity_created", "opportunity_won"]
    assert (camp["budget_minor"], camp["currency"], camp["status"]) == (120_000, "CNY", "ACTIVE")
    assert lines == [("products/a", 50_000), ("products/b", 30_000)]
    assert deleted is True

    # Every event again (same ids, new messages): nothing changes.
    await h.republish_all()
    assert await projected(app, await h.marker())
    again = await table_rows(app)
    marker_free = {k: [r for r in v if "marker" not in r] for k, v in again.items()}
    assert marker_free == {k: [r for r in v if "marker" not in r] for k, v in rows.items()}
    async with app.db.read_session() as session:
        assert len(await timeline.entries(session, customer)) == 3


async def test_out_of_order_events_end_in_the_same_state(reporting_service):
    app, js = the_app(reporting_service), reporting_service.infrastructure.js
    h = SalesHistory(js)
    opp, customer, lead = uid("opportunities"), uid("customers"), uid("leads")
    t1, t2, t3 = T0 + timedelta(days=1), T0 + timedelta(days=3), T0 + timedelta(days=6)
    base = dict(customer=customer, amount=10_000, owner="olga", team="west", created=T0)

    def change(stage_from: str, stage_to: str, at: datetime, **extra):
        snap = opportunity(opp, stage=stage_to, **{**base, **extra})
        return ev.OpportunityStageChanged(
            opportunity=snap,
            from_stage=f"pipelines/main/stages/{stage_from}",
            to_stage=snap.stage,
            change_time=ts(at),
        )

    # Reverse order: the loss first, then the later stage change, then the earlier one, then creation.
    lost = opportunity(opp, stage="lost", **{**base, "owner": "omar"})
    await h.publish(ev.OpportunityLost(opportunity=lost, lost_reason="price", lost_time=ts(t3)), opp, t3)
    await h.publish(change("develop", "propose", t2), opp, t2)
    await h.publish(change("qualify", "develop", t1), opp, t1)
    await h.publish(ev.OpportunityCreated(opportunity=opportunity(opp, stage="qualify", **base)), opp, T0)
    # An older snapshot (update before the loss, with another amount and owner) arriving last.
    stale = opportunity(opp, stage="develop", **{**base, "amount": 999})
    await h.publish(
        ev.OpportunityUpdated(opportunity=stale, changed_fields=["amount"]), opp, t1 + timedelta(hours=1)
    )
    # A lead whose conversion arrives before its creation and an older assignment after both.
    lead_snap = ev.LeadSnapshot(name=lead, source_channel=2, owner="lena", team="west", create_time=ts(T0))
    await h.publish(ev.LeadConverted(lead=lead_snap, customer=customer), lead, t2)
    await h.publish(ev.LeadCreated(lead=lead_snap), lead, T0)
    old = ev.LeadSnapshot(name=lead, source_channel=2, owner="old", team="old", create_time=ts(T0))
    await h.publish(ev.LeadAssigned(lead=old, from_owner="x", to_owner="old"), lead, T0 - timedelta(hours=1))
    assert await projected(app, await h.marker())

    async with app.db.read_session() as session:
        o = (
            (await session.execute(sa.select(sales_opportunities).where(sales_opportunities.c.name == opp)))
            .mappings()
            .one()
        )
        intervals = (
            await session.execute(
                sa.select(
                    sales_stage_intervals.c.stage,
                    sales_stage_intervals.c.entered_at,
                    sales_stage_intervals.c.left_at,
                    sales_stage_intervals.c.seconds_in_stage,
                    sales_stage_intervals.c.owner,
                )
                .where(sales_stage_intervals.c.opportunity == opp)
                .order_by(sales_stage_intervals.c.entered_at)
            )
        ).all()
        lead_row = (
            (await session.execute(sa.select(sales_leads).where(sales_leads.c.name == lead))).mappings().one()
        )

    assert (o["status"], o["stage"], o["amount_minor"], o["owner"]) == (
        "lost",
        "pipelines/main/stages/lost",
        10_000,
        "omar",
    )
    assert o["lost_time"] == t3 and o["create_time"] == T0
    assert [(s.rsplit("/", 1)[1], e, left, sec, owner) for s, e, left, sec, owner in intervals] == [
        ("qualify", T0, t1, (t1 - T0).total_seconds(), "omar"),
        ("develop", t1, t2, (t2 - t1).total_seconds(), "omar"),
        ("propose", t2, t3, (t3 - t2).total_seconds(), "omar"),
        ("lost", t3, None, None, "omar"),
    ]
    assert (lead_row["owner"], lead_row["team"], lead_row["channel"]) == ("lena", "west", "ADS")
    assert lead_row["convert_time"] == t2 and lead_row["customer"] == customer


async def test_stage_counts_equal_a_group_by_over_the_opportunities(reporting_service):
    """The funnel's per-stage counts kept incrementally equal the same GROUP BY over every live
    opportunity, after moves, owner changes, wins, losses, deletions and late old snapshots."""
    from crm_reporting.adapters.sales_tables import sales_stage_current

    app, js = the_app(reporting_service), reporting_service.infrastructure.js
    h = SalesHistory(js)
    await publish_history(h)
    opp, customer = uid("opportunities"), uid("customers")
    base = dict(customer=customer, amount=7_000, owner="olga", team="west", created=T0)
    await h.publish(ev.OpportunityCreated(opportunity=opportunity(opp, stage="qualify", **base)), opp, T0)
    moved = opportunity(opp, stage="develop", **{**base, "owner": "omar", "team": "east", "amount": 9_000})
    await h.publish(ev.OpportunityUpdated(opportunity=moved), opp, T0 + timedelta(days=2))
    stale = opportunity(opp, stage="qualify", **base)
    await h.publish(ev.OpportunityUpdated(opportunity=stale), opp, T0 + timedelta(days=1))
    assert await projected(app, await h.marker())

    o, c = sales_opportunities, sales_stage_current
    async with app.db.read_session() as session:
        expected = (
            await session.execute(
                sa.select(
                    o.c.stage,
                    o.c.pipeline,
                    o.c.currency,
                    o.c.owner,
                    o.c.team,
                    sa.func.count(),
                    sa.func.sum(o.c.amount_minor),
                )
                .where(o.c.deleted.is_(False), o.c.stage != "")
                .group_by(o.c.stage, o.c.pipeline, o.c.currency, o.c.owner, o.c.team)
            )
        ).all()
        kept = (
            await session.execute(
                sa.select(
                    c.c.stage,
                    c.c.pipeline,
                    c.c.currency,
                    c.c.owner,
                    c.c.team,
                    c.c.opportunities,
                    c.c.amount_minor,
                ).where(c.c.opportunities > 0)
            )
        ).all()
    assert sorted(map(tuple, kept)) == sorted(map(tuple, expected))
    assert ("pipelines/main/stages/develop", "pipelines/main", "CNY", "omar", "east", 1, 9_000) in map(
        tuple, kept
    )
