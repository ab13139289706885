"""The sales read model, projected from the sales service's events (stream CRM_SALES).

Handlers are idempotent (the consumer's inbox dedupes by event id; every write here is also an
upsert or a keyed insert) and tolerate out-of-order delivery: a snapshot replaces the stored one
only when its event is at least as recent (`snapshot_time`), terminal facts (converted, won,
lost, deleted) are kept whatever order they arrive in, and stage intervals are placed by their
entry time, closing whichever neighbour they interrupt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from crm.sales.v1 import common_pb2 as sales_common_pb
from crm.sales.v1 import events_pb2 as sales_pb
from crm_reporting.adapters.sales_tables import (
    sales_campaigns,
    sales_leads,
    sales_opportunities,
    sales_order_lines,
    sales_stage_current,
    sales_stage_intervals,
    sales_stages,
)
from crm_reporting.domain import sales_metrics as metrics
from crm_reporting.service import timeline
from crm_shared.events.envelope import EventEnvelope, occurred_at

SOURCE = "sales"


@dataclass
class SalesSummary:
    open_opportunities: int = 0
    won_opportunities: int = 0
    # currency -> open amount (minor units)
    open_pipeline: dict[str, int] = field(default_factory=dict)


async def customer_sales_summary(session: AsyncSession, customer: str) -> SalesSummary:
    """A customer's opportunities for the 360 view: open and won counts, open pipeline per currency."""
    o = sales_opportunities
    rows = (
        await session.execute(
            sa.select(
                o.c.status, o.c.currency, sa.func.count(), sa.func.coalesce(sa.func.sum(o.c.amount_minor), 0)
            )
            .where(o.c.customer == customer, o.c.deleted.is_(False))
            .group_by(o.c.status, o.c.currency)
        )
    ).all()
    summary = SalesSummary()
    for status, currency, count, amount in rows:
        if status == "open":
            summary.open_opportunities += count
            if currency:
                summary.open_pipeline[currency] = summary.open_pipeline.get(currency, 0) + int(amount)
        elif status == "won":
            summary.won_opportunities += count
    return summary


# --- helpers --------------------------------------------------------------------------------------


def _time(ts) -> datetime | None:
    """A protobuf Timestamp field as an aware datetime (None when unset)."""
    if ts is None or (ts.seconds == 0 and ts.nanos == 0):
        return None
    return ts.ToDatetime(tzinfo=UTC)


def _channel(value: int) -> str:
    name = sales_common_pb.LeadSourceChannel.Name(value) if value else ""
    return name.removeprefix("LEAD_SOURCE_CHANNEL_") if name and value else ""


async def _record_timeline(uow, envelope: EventEnvelope, **fields) -> None:
    """The customer's timeline (keyed by event id and kind: a redelivery records nothing new).

    Summaries are fixed words, never titles or reasons typed by a person (no personal data)."""
    if fields.get("customer"):
        await timeline.record(uow, key=f"{envelope.id}:{fields['kind']}", **fields)


# --- leads ----------------------------------------------------------------------------------------


async def _upsert_lead(session, snapshot: sales_pb.LeadSnapshot, at: datetime, **facts) -> None:
    t = sales_leads
    row = (await session.execute(sa.select(t.c.snapshot_time).where(t.c.name == snapshot.name))).first()
    channel = _channel(snapshot.source_channel)
    values = dict(
        channel=channel,
        source=snapshot.source_platform or channel,
        campaign=snapshot.campaign,
        owner=snapshot.owner,
        team=snapshot.team,
        create_time=_time(snapshot.create_time),
        snapshot_time=at,
    )
    if row is None:
        await session.execute(sa.insert(t).values(name=snapshot.name, **values, **facts))
        return
    if not metrics.is_newer(at, row.snapshot_time):
        values = {}
    values.update(facts)
    if values:
        await session.execute(sa.update(t).where(t.c.name == snapshot.name).values(**values))


async def lead_created(uow, envelope: EventEnvelope, payload: sales_pb.LeadCreated) -> None:
    await _upsert_lead(uow.session, payload.lead, occurred_at(envelope))


async def lead_assigned(uow, envelope: EventEnvelope, payload: sales_pb.LeadAssigned) -> None:
    await _upsert_lead(uow.session, payload.lead, occurred_at(envelope))


async def lead_converted(uow, envelope: EventEnvelope, payload: sales_pb.LeadConverted) -> None:
    at = occurred_at(envelope)
    await _upsert_lead(
        uow.session,
        payload.lead,
        at,
        convert_time=at,
        customer=payload.customer,
        opportunity=payload.opportunity,
    )


async def lead_disqualified(uow, envelope: EventEnvelope, payload: sales_pb.LeadDisqualified) -> None:
    at = occurred_at(envelope)
    await _upsert_lead(uow.session, payload.lead, at, disqualify_time=at)


# --- opportunities --------------------------------------------------------------------------------


def _in_stage(row) -> tuple[tuple, int] | None:
    """What an opportunity row counts in sales_stage_current: (key, amount), or None."""
    if row is None or row["deleted"] or not row["stage"]:
        return None
    return (row["stage"], row["pipeline"], row["currency"], row["owner"], row["team"]), int(
        row["amount_minor"]
    )


async def _move_in_stage_counts(session, before, after) -> None:
    """Keep sales_stage_current equal to GROUP BY over the live opportunities, one change at a time."""
    old, new = _in_stage(before), _in_stage(after)
    if old == new:
        return
    c = sales_stage_current
    columns = ("stage", "pipeline", "currency", "owner", "team")
    if old is not None:
        key, amount = old
        await session.execute(
            sa.update(c)
            .where(*[c.c[k] == v for k, v in zip(columns, key, strict=True)])
            .values(opportunities=c.c.opportunities - 1, amount_minor=c.c.amount_minor - amount)
        )
    if new is not None:
        key, amount = new
        updated = await session.execute(
            sa.update(c)
            .where(*[c.c[k] == v for k, v in zip(columns, key, strict=True)])
            .values(opportunities=c.c.opportunities + 1, amount_minor=c.c.amount_minor + amount)
        )
        if updated.rowcount == 0:
            await session.execute(
                sa.insert(c).values(
                    **dict(zip(columns, key, strict=True)), opportunities=1, amount_minor=amount
                )
            )


def _opportunity_values(s: sales_pb.OpportunitySnapshot) -> dict:
    return dict(
        customer=s.customer,
        pipeline=s.pipeline,
        stage=s.stage,
        currency=s.amount.currency_code,
        amount_minor=s.amount.amount_minor,
        weighted_minor=s.weighted_amount.amount_minor,
        probability=s.probability,
        forecast_category=int(s.forecast_category),
        expected_close_time=_time(s.expected_close_time),
        owner=s.owner,
        team=s.team,
        source_lead=s.source_lead,
        campaign=s.campaign,
        create_time=_time(s.create_time),
    )


async def _upsert_opportunity(
    session, s: sales_pb.OpportunitySnapshot, at: datetime, *, status: str | None = None
) -> dict:
    """Apply a snapshot (if not older than the stored one) and a status (if not older); returns the row."""
    t = sales_opportunities
    row = (await session.execute(sa.select(t).where(t.c.name == s.name))).mappings().first()
    values = _opportunity_values(s)
    if row is None:
        created = dict(name=s.name, **values, snapshot_time=at, status=status or "open")
        created["status_time"] = at if status else None
        await session.execute(sa.insert(t).values(**created))
        created["deleted"] = False
        await _move_in_stage_counts(session, None, created)
        return created
    changes: dict = {}
    if metrics.is_newer(at, row["snapshot_time"]):
        changes.update(values, snapshot_time=at)
        if (row["owner"], row["team"], row["pipeline"]) != (s.owner, s.team, s.pipeline):
            await session.execute(
                sa.update(sales_stage_intervals)
                .where(sales_stage_intervals.c.opportunity == s.name)
                .values(owner=s.owner, team=s.team, pipeline=s.pipeline)
            )
    elif row["create_time"] is None and s.create_time.seconds:
        changes["create_time"] = _time(s.create_time)
    if status is not None and metrics.is_newer(at, row["status_time"]):
        changes.update(status=status, status_time=at)
    if changes:
        await session.execute(sa.update(t).where(t.c.name == s.name).values(**changes))
        await _move_in_stage_counts(session, row, {**row, **changes})
    return {**row, **changes}


async def _enter_stage(session, opportunity: dict, stage: str, at: datetime, closing: str = "") -> None:
    """Record that the opportunity entered `stage` at `at`, closing the interval it interrupts."""
    if not stage:
        return
    i = sales_stage_intervals
    name = opportunity["name"]
    exists = await session.execute(
        sa.select(i.c.stage).where(i.c.opportunity == name, i.c.entered_at == at, i.c.stage == stage)
    )
    if exists.first() is not None:
        return
    prev = (
        await session.execute(
            sa.select(i.c.entered_at, i.c.stage, i.c.left_at)
            .where(i.c.opportunity == name, i.c.entered_at < at)
            .order_by(i.c.entered_at.desc())
            .limit(1)
        )
    ).first()
    if prev is not None and prev.stage == stage:
        return  # a repeated snapshot of the stage it is already in: not a new entry
    following = (
        await session.execute(
            sa.select(sa.func.min(i.c.entered_at)).where(i.c.opportunity == name, i.c.entered_at > at)
        )
    ).scalar()
    if prev is not None and (prev.left_at is None or prev.left_at > at):
        await session.execute(
            sa.update(i)
            .where(i.c.opportunity == name, i.c.entered_at == prev.entered_at, i.c.stage == prev.stage)
            .values(left_at=at, seconds_in_stage=metrics.seconds_between(prev.entered_at, at))
        )
    same_stage = [i.c.opportunity == name, i.c.stage == stage]
    previous_entry = (
        await session.execute(sa.select(sa.func.max(i.c.entered_at)).where(*same_stage, i.c.entered_at < at))
    ).scalar()
    # The next entry into the same stage (arrived earlier, happened later) now follows this one.
    next_entry = (
        await session.execute(sa.select(sa.func.min(i.c.entered_at)).where(*same_stage, i.c.entered_at > at))
    ).scalar()
    if next_entry is not None:
        await session.execute(
            sa.update(i).where(*same_stage, i.c.entered_at == next_entry).values(previous_entry_at=at)
        )
    await session.execute(
        sa.insert(i).values(
            opportunity=name,
            entered_at=at,
            stage=stage,
            pipeline=opportunity["pipeline"],
            owner=opportunity["owner"],
            team=opportunity["team"],
            left_at=following,
            seconds_in_stage=metrics.seconds_between(at, following),
            closing=closing,
            previous_entry_at=previous_entry,
        )
    )
    await _note_stage(session, stage, opportunity["pipeline"], at, closing)


async def _note_stage(session, stage: str, pipeline: str, at: datetime, closing: str) -> None:
    """Keep the stage's first entry time (funnel order) and whether it is a closing stage."""
    st = sales_stages
    row = (await session.execute(sa.select(st).where(st.c.stage == stage))).mappings().first()
    if row is None:
        await session.execute(
            sa.insert(st).values(stage=stage, pipeline=pipeline, first_entered_at=at, closing=closing)
        )
        return
    changes: dict = {}
    if at < row["first_entered_at"]:
        changes["first_entered_at"] = at
    if closing and not row["closing"]:
        changes["closing"] = closing
    if changes:
        await session.execute(sa.update(st).where(st.c.stage == stage).values(**changes))


async def opportunity_created(uow, envelope: EventEnvelope, payload: sales_pb.OpportunityCreated) -> None:
    s = payload.opportunity
    at = occurred_at(envelope)
    row = await _upsert_opportunity(uow.session, s, at)
    await _enter_stage(uow.session, row, s.stage, _time(s.create_time) or at)
    await _record_timeline(
        uow,
        envelope,
        customer=s.customer,
        time=at,
        kind="opportunity_created",
        resource=s.name,
        summary="created",
        currency=s.amount.currency_code,
        amount_minor=s.amount.amount_minor,
        actor=envelope.actor.subject,
    )


async def opportunity_stage_changed(
    uow, envelope: EventEnvelope, payload: sales_pb.OpportunityStageChanged
) -> None:
    s = payload.opportunity
    at = occurred_at(envelope)
    row = await _upsert_opportunity(uow.session, s, at, status="open")
    await _enter_stage(uow.session, row, payload.to_stage or s.stage, _time(payload.change_time) or at)


async def opportunity_updated(uow, envelope: EventEnvelope, payload: sales_pb.OpportunityUpdated) -> None:
    await _upsert_opportunity(uow.session, payload.opportunity, occurred_at(envelope))


async def opportunity_won(uow, envelope: EventEnvelope, payload: sales_pb.OpportunityWon) -> None:
    s = payload.opportunity
    at = occurred_at(envelope)
    won_time = _time(payload.won_time) or at
    row = await _upsert_opportunity(uow.session, s, at, status="won")
    create_time = row.get("create_time") or _time(s.create_time)
    await uow.session.execute(
        sa.update(sales_opportunities)
        .where(sales_opportunities.c.name == s.name)
        .values(
            won_time=won_time,
            close_month=metrics.month_key(won_time),
            cycle_seconds=metrics.seconds_between(create_time, won_time),
        )
    )
    await _enter_stage(uow.session, row, s.stage, won_time, closing="won")
    await _record_timeline(
        uow,
        envelope,
        customer=s.customer,
        time=won_time,
        kind="opportunity_won",
        resource=s.name,
        summary="won",
        currency=s.amount.currency_code,
        amount_minor=s.amount.amount_minor,
        actor=envelope.actor.subject,
    )


async def opportunity_lost(uow, envelope: EventEnvelope, payload: sales_pb.OpportunityLost) -> None:
    s = payload.opportunity
    at = occurred_at(envelope)
    lost_time = _time(payload.lost_time) or at
    row = await _upsert_opportunity(uow.session, s, at, status="lost")
    await uow.session.execute(
        sa.update(sales_opportunities)
        .where(sales_opportunities.c.name == s.name)
        .values(lost_time=lost_time, close_month=metrics.month_key(lost_time))
    )
    await _enter_stage(uow.session, row, s.stage, lost_time, closing="lost")
    await _record_timeline(
        uow,
        envelope,
        customer=s.customer,
        time=lost_time,
        kind="opportunity_lost",
        resource=s.name,
        summary="lost",
        currency=s.amount.currency_code,
        amount_minor=s.amount.amount_minor,
        actor=envelope.actor.subject,
    )


async def opportunity_deleted(uow, envelope: EventEnvelope, payload: sales_pb.OpportunityDeleted) -> None:
    t = sales_opportunities
    at = occurred_at(envelope)
    row = (await uow.session.execute(sa.select(t).where(t.c.name == payload.opportunity))).mappings().first()
    if row is None:
        await uow.session.execute(
            sa.insert(t).values(
                name=payload.opportunity,
                customer=payload.customer,
                owner=payload.owner,
                team=payload.team,
                deleted=True,
                snapshot_time=at,
            )
        )
        return
    if not row["deleted"]:
        await uow.session.execute(sa.update(t).where(t.c.name == payload.opportunity).values(deleted=True))
        await _move_in_stage_counts(uow.session, row, {**row, "deleted": True})


# --- quotes, orders, campaigns --------------------------------------------------------------------


async def quote_accepted(uow, envelope: EventEnvelope, payload: sales_pb.QuoteAccepted) -> None:
    await _record_timeline(
        uow,
        envelope,
        customer=payload.customer,
        time=occurred_at(envelope),
        kind="quote_accepted",
        resource=payload.quote,
        summary="accepted",
        currency=payload.total.currency_code,
        amount_minor=payload.total.amount_minor,
        actor=envelope.actor.subject,
    )


async def order_created(uow, envelope: EventEnvelope, payload: sales_pb.OrderCreated) -> None:
    t = sales_order_lines
    at = occurred_at(envelope)
    exists = await uow.session.execute(sa.select(t.c.line_no).where(t.c.order_name == payload.order).limit(1))
    if exists.first() is not None:
        return
    rows = [
        dict(
            order_name=payload.order,
            line_no=n,
            product=line.product or line.sku,
            sku=line.sku,
            quantity=line.quantity,
            currency=(
                line.net_amount.currency_code or line.amount.currency_code or payload.total.currency_code
            ),
            net_minor=line.net_amount.amount_minor
            if line.HasField("net_amount")
            else line.amount.amount_minor,
            customer=payload.customer,
            owner=payload.owner,
            team=payload.team,
            order_time=at,
        )
        for n, line in enumerate(payload.lines)
    ]
    if rows:
        await uow.session.execute(sa.insert(t), rows)


async def _upsert_campaign(session, c: sales_pb.CampaignSnapshot, at: datetime) -> None:
    t = sales_campaigns
    values = dict(
        display_name=c.display_name,
        channel=c.channel,
        currency=c.budget.currency_code,
        budget_minor=c.budget.amount_minor,
        start_time=_time(c.start_time),
        end_time=_time(c.end_time),
        status=c.status,
        snapshot_time=at,
    )
    row = (await session.execute(sa.select(t.c.snapshot_time).where(t.c.name == c.name))).first()
    if row is None:
        await session.execute(sa.insert(t).values(name=c.name, **values))
    elif metrics.is_newer(at, row.snapshot_time):
        await session.execute(sa.update(t).where(t.c.name == c.name).values(**values))


async def campaign_created(uow, envelope: EventEnvelope, payload: sales_pb.CampaignCreated) -> None:
    await _upsert_campaign(uow.session, payload.campaign, occurred_at(envelope))


async def campaign_updated(uow, envelope: EventEnvelope, payload: sales_pb.CampaignUpdated) -> None:
    await _upsert_campaign(uow.session, payload.campaign, occurred_at(envelope))


async def campaign_response_recorded(
    uow, envelope: EventEnvelope, payload: sales_pb.CampaignResponseRecorded
) -> None:
    t = sales_campaigns
    updated = await uow.session.execute(
        sa.update(t).where(t.c.name == payload.campaign).values(responses=t.c.responses + 1)
    )
    if updated.rowcount == 0:
        await uow.session.execute(sa.insert(t).values(name=payload.campaign, responses=1))


HANDLERS = (
    (sales_pb.LeadCreated, lead_created),
    (sales_pb.LeadAssigned, lead_assigned),
    (sales_pb.LeadConverted, lead_converted),
    (sales_pb.LeadDisqualified, lead_disqualified),
    (sales_pb.OpportunityCreated, opportunity_created),
    (sales_pb.OpportunityStageChanged, opportunity_stage_changed),
    (sales_pb.OpportunityUpdated, opportunity_updated),
    (sales_pb.OpportunityWon, opportunity_won),
    (sales_pb.OpportunityLost, opportunity_lost),
    (sales_pb.OpportunityDeleted, opportunity_deleted),
    (sales_pb.QuoteAccepted, quote_accepted),
    (sales_pb.OrderCreated, order_created),
    (sales_pb.CampaignCreated, campaign_created),
    (sales_pb.CampaignUpdated, campaign_updated),
    (sales_pb.CampaignResponseRecorded, campaign_response_recorded),
)


def register(registry, app) -> None:
    for payload_type, handler in HANDLERS:
        registry.on(SOURCE, payload_type, handler)
