"""SQL of the sales reports: one GROUP BY per figure over the sales read model, filtered by the
caller's scope predicate (owner/team columns) and the report period. No row-by-row Python."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

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

o = sales_opportunities
i = sales_stage_intervals
leads = sales_leads
lines = sales_order_lines


def in_period(column, start: datetime | None, end: datetime | None) -> sa.ColumnElement[bool]:
    """[start, end) on a time column; open ends are unbounded (a NULL time is never in a period)."""
    conditions = [column.is_not(None)]
    if start is not None:
        conditions.append(column >= start)
    if end is not None:
        conditions.append(column < end)
    return sa.and_(*conditions)


def _sum(expr) -> sa.ColumnElement:
    return sa.func.coalesce(sa.func.sum(expr), 0)


# --- funnel ---------------------------------------------------------------------------------------


async def stages_entered_and_days(session: AsyncSession, scope, pipeline: str) -> list[tuple]:
    """(stage, pipeline, opportunities that entered it in the period, mean seconds in it of the
    intervals that ended in the period or None).

    One row per known stage (sales_stages, a handful); each figure is a correlated subquery with
    equality on (stage, pipeline) and a range on the time, served by the covering indexes
    ix_sales_intervals_{stage,team,owner}_entered / _left (no scan of the intervals)."""
    st = sales_stages
    same_stage = [
        i.c.stage == st.c.stage,
        i.c.pipeline == st.c.pipeline,
        scope.predicate(i.c.owner, i.c.team),
    ]
    # Distinct opportunities: of an opportunity's entries in the period, only the first one has
    # its previous entry into the stage before the period (or none).
    first_in_period = (
        i.c.previous_entry_at.is_(None)
        if scope.start is None
        else sa.or_(i.c.previous_entry_at.is_(None), i.c.previous_entry_at < scope.start)
    )
    entered = (
        sa.select(sa.func.count())
        .where(*same_stage, in_period(i.c.entered_at, scope.start, scope.end), first_in_period)
        .scalar_subquery()
    )
    average = (
        sa.select(sa.func.avg(i.c.seconds_in_stage))
        .where(*same_stage, in_period(i.c.left_at, scope.start, scope.end))
        .scalar_subquery()
    )
    query = sa.select(st.c.stage, st.c.pipeline, entered, average)
    if pipeline:
        query = query.where(st.c.pipeline == pipeline)
    return [
        (s, p, int(n or 0), None if a is None else float(a)) for s, p, n, a in await session.execute(query)
    ]


async def stages_first_seen(session: AsyncSession, pipeline: str) -> dict[str, tuple[str, datetime, str]]:
    """stage -> (pipeline, first time any opportunity entered it, "won"/"lost"/""): the funnel's order."""
    st = sales_stages
    query = sa.select(st.c.stage, st.c.pipeline, st.c.first_entered_at, st.c.closing)
    if pipeline:
        query = query.where(st.c.pipeline == pipeline)
    return {
        stage: (pipe, metrics.as_utc(first), closing or "")
        for stage, pipe, first, closing in await session.execute(query)
    }


async def stages_current(session: AsyncSession, scope, pipeline: str) -> list[tuple[str, str, str, int, int]]:
    """(stage, pipeline, currency, opportunities in it now, their amount), from the counts the
    projection keeps per (stage, currency, owner, team) — a few rows per rep, not one per deal."""
    c = sales_stage_current
    where = [scope.predicate(c.c.owner, c.c.team)]
    if pipeline:
        where.append(c.c.pipeline == pipeline)
    count = sa.func.sum(c.c.opportunities)
    rows = await session.execute(
        sa.select(c.c.stage, c.c.pipeline, c.c.currency, count, _sum(c.c.amount_minor))
        .where(*where)
        .group_by(c.c.stage, c.c.pipeline, c.c.currency)
        .having(count > 0)
    )
    return [(s, p, cur, int(n), int(a)) for s, p, cur, n, a in rows]


async def won_lost(session: AsyncSession, scope, pipeline: str) -> tuple[int, int]:
    """Opportunities won / lost in the period (each count served by its own time index)."""
    counts = []
    for status, column in (("won", o.c.won_time), ("lost", o.c.lost_time)):
        where = [
            in_period(column, scope.start, scope.end),
            o.c.status == status,
            o.c.deleted.is_(False),
            scope.predicate(o.c.owner, o.c.team),
        ]
        if pipeline:
            where.append(o.c.pipeline == pipeline)
        counts.append(int((await session.execute(sa.select(sa.func.count()).where(*where))).scalar() or 0))
    return counts[0], counts[1]


# --- lead conversion ------------------------------------------------------------------------------

LEAD_KEYS = {"source": leads.c.source, "channel": leads.c.channel, "campaign": leads.c.campaign}


async def lead_counts(session: AsyncSession, scope, group: str) -> list[tuple[str, int, int]]:
    """(key, leads created in the period, of which converted)."""
    key = LEAD_KEYS[group]
    rows = await session.execute(
        sa.select(key, sa.func.count(), sa.func.count(leads.c.convert_time))
        .where(
            scope.predicate(leads.c.owner, leads.c.team),
            in_period(leads.c.create_time, scope.start, scope.end),
        )
        .group_by(key)
    )
    return [(k, int(n), int(c)) for k, n, c in rows]


def _won_from_leads(scope, columns, group_by):
    return (
        sa.select(*columns)
        .select_from(leads.join(o, o.c.source_lead == leads.c.name))
        .where(
            scope.predicate(leads.c.owner, leads.c.team),
            in_period(leads.c.create_time, scope.start, scope.end),
            o.c.status == "won",
            o.c.deleted.is_(False),
        )
        .group_by(*group_by)
    )


async def lead_wins(session: AsyncSession, scope, group: str) -> list[tuple[str, str, int, int]]:
    """(key, currency, won opportunities from the period's leads, their amount)."""
    key = LEAD_KEYS[group]
    rows = await session.execute(
        _won_from_leads(
            scope, [key, o.c.currency, sa.func.count(), _sum(o.c.amount_minor)], [key, o.c.currency]
        )
    )
    return [(k, c, int(n), int(a)) for k, c, n, a in rows]


async def lead_won_customers(session: AsyncSession, scope, group: str) -> dict[str, int]:
    """key -> distinct customers won from the period's leads (acquisition cost's denominator)."""
    key = LEAD_KEYS[group]
    rows = await session.execute(
        _won_from_leads(scope, [key, sa.func.count(sa.distinct(o.c.customer))], [key])
    )
    return {k: int(n) for k, n in rows}


async def lead_won_customers_total(session: AsyncSession, scope) -> int:
    query = (
        sa.select(sa.func.count(sa.distinct(o.c.customer)))
        .select_from(leads.join(o, o.c.source_lead == leads.c.name))
        .where(
            scope.predicate(leads.c.owner, leads.c.team),
            in_period(leads.c.create_time, scope.start, scope.end),
            o.c.status == "won",
            o.c.deleted.is_(False),
        )
    )
    return int((await session.execute(query)).scalar() or 0)


async def campaign_budgets(session: AsyncSession, names: list[str]) -> dict[str, tuple[str, int]]:
    """campaign -> (currency, budget) for the campaigns known from CampaignCreated/Updated."""
    if not names:
        return {}
    c = sales_campaigns
    rows = await session.execute(
        sa.select(c.c.name, c.c.currency, c.c.budget_minor).where(c.c.name.in_(names), c.c.currency != "")
    )
    return {n: (cur, int(b)) for n, cur, b in rows}


# --- performance and forecast ---------------------------------------------------------------------

OPPORTUNITY_KEYS = {"owner": o.c.owner, "team": o.c.team, "month": o.c.close_month}


async def performance(session: AsyncSession, scope, group: str) -> list[tuple]:
    """(key, currency, won, lost, booked, mean cycle seconds of the won) for wins/losses in the period."""
    key = OPPORTUNITY_KEYS[group]
    won = sa.and_(o.c.status == "won", in_period(o.c.won_time, scope.start, scope.end))
    lost = sa.and_(o.c.status == "lost", in_period(o.c.lost_time, scope.start, scope.end))
    rows = await session.execute(
        sa.select(
            key,
            o.c.currency,
            _sum(sa.case((won, 1), else_=0)),
            _sum(sa.case((lost, 1), else_=0)),
            _sum(sa.case((won, o.c.amount_minor), else_=0)),
            sa.func.avg(sa.case((won, o.c.cycle_seconds), else_=None)),
        )
        .where(o.c.deleted.is_(False), scope.predicate(o.c.owner, o.c.team), sa.or_(won, lost))
        .group_by(key, o.c.currency)
    )
    return [(k, c, int(w), int(lo), int(b), float(cy or 0.0)) for k, c, w, lo, b, cy in rows]


async def product_bookings(session: AsyncSession, scope) -> list[tuple[str, str, int]]:
    """(product, currency, order lines' net amount) of orders created in the period."""
    rows = await session.execute(
        sa.select(lines.c.product, lines.c.currency, _sum(lines.c.net_minor))
        .where(
            scope.predicate(lines.c.owner, lines.c.team),
            in_period(lines.c.order_time, scope.start, scope.end),
        )
        .group_by(lines.c.product, lines.c.currency)
    )
    return [(p, c, int(a)) for p, c, a in rows]


async def forecast_open(session: AsyncSession, scope, group: str) -> list[tuple]:
    """(key, currency, pipeline, best case, commit, weighted) of open opportunities closing in the period."""
    key = OPPORTUNITY_KEYS[group]
    cat = o.c.forecast_category

    def bucket(category: int):
        return _sum(sa.case((cat == category, o.c.amount_minor), else_=0))

    rows = await session.execute(
        sa.select(
            key,
            o.c.currency,
            bucket(metrics.FORECAST_PIPELINE),
            bucket(metrics.FORECAST_BEST_CASE),
            bucket(metrics.FORECAST_COMMIT),
            _sum(
                sa.case(
                    (cat.in_([metrics.FORECAST_OMITTED, metrics.FORECAST_CLOSED]), 0),
                    else_=o.c.weighted_minor,
                )
            ),
        )
        .where(
            o.c.deleted.is_(False),
            o.c.status == "open",
            scope.predicate(o.c.owner, o.c.team),
            in_period(o.c.expected_close_time, scope.start, scope.end),
        )
        .group_by(key, o.c.currency)
    )
    return [(k, c, int(p), int(b), int(cm), int(w)) for k, c, p, b, cm, w in rows]


async def won_amounts(session: AsyncSession, scope, group: str) -> dict[tuple[str, str], int]:
    key = OPPORTUNITY_KEYS[group]
    rows = await session.execute(
        sa.select(key, o.c.currency, _sum(o.c.amount_minor))
        .where(
            o.c.deleted.is_(False),
            o.c.status == "won",
            scope.predicate(o.c.owner, o.c.team),
            in_period(o.c.won_time, scope.start, scope.end),
        )
        .group_by(key, o.c.currency)
    )
    return {(k, c): int(a) for k, c, a in rows}
