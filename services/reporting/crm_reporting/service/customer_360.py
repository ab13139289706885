"""Customer 360: profile, timeline and every area's summary of one customer, in one call.

Scope: the caller's customer_insights read grant applied to the customer's owner/team; a
customer outside it is NOT_FOUND (indistinguishable from an unknown one). The areas' summaries
come through their interface functions (sales, contracts, servicedesk, analytics), imported when
called so this module does not depend on them at import time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from crm_reporting.adapters.customer_repository import CustomerRepository, CustomerRow
from crm_reporting.adapters.projection_tables import timeline as timeline_table
from crm_reporting.service import timeline
from crm_shared.errors import NotFound

log = logging.getLogger(__name__)

DEFAULT_TIMELINE = 50
MAX_TIMELINE = 500


@dataclass
class Customer360View:
    customer: str
    profile: CustomerRow
    timeline: list[timeline.TimelineEntry]
    last_deal_time: datetime | None = None
    lifetime_value: dict[str, int] = field(default_factory=dict)
    open_pipeline: dict[str, int] = field(default_factory=dict)
    receivables_outstanding: dict[str, int] = field(default_factory=dict)
    receivables_overdue: dict[str, int] = field(default_factory=dict)
    open_opportunities: int = 0
    won_opportunities: int = 0
    active_contracts: int = 0
    open_tickets: int = 0
    recent_sla_breaches: int = 0
    average_csat: float = 0.0
    score: Any = None
    as_of: datetime | None = None


def _not_found(customer: str) -> NotFound:
    return NotFound(
        f"customer {customer} not found", reason="CUSTOMER_NOT_FOUND", metadata={"customer": customer}
    )


async def _latest_time(session, customer: str, kinds: tuple[str, ...] | None = None) -> datetime | None:
    stmt = sa.select(sa.func.max(timeline_table.c.time)).where(timeline_table.c.customer == customer)
    if kinds:
        stmt = stmt.where(timeline_table.c.kind.in_(kinds))
    return (await session.execute(stmt)).scalar_one_or_none()


async def customer_360(
    session, deps, principal, customer: str, *, timeline_limit: int = 0
) -> Customer360View:
    grant = deps.policy.grant(principal, "customer_insights", "read")
    row = await CustomerRepository(session).get(customer)
    if row is None or row.deleted or not grant.permits(owner=row.owner, team=row.team):
        raise _not_found(customer)
    limit = min(timeline_limit or DEFAULT_TIMELINE, MAX_TIMELINE)
    view = Customer360View(
        customer=customer,
        profile=row,
        timeline=await timeline.entries(session, customer, limit=limit),
        last_deal_time=await _latest_time(session, customer, ("opportunity_won",)),
    )
    newest = [t for t in (row.event_time, await _latest_time(session, customer)) if t is not None]
    view.as_of = max(newest) if newest else None
    now = deps.clock.now()

    try:
        from crm_reporting.service.sales_projection import customer_sales_summary
    except ImportError:
        log.warning("customer 360: sales summary not available")
    else:
        sales = await customer_sales_summary(session, customer)
        view.open_opportunities = int(sales.open_opportunities)
        view.won_opportunities = int(sales.won_opportunities)
        view.open_pipeline = dict(sales.open_pipeline)

    try:
        from crm_reporting.service.contract_projection import customer_money_summary
    except ImportError:
        log.warning("customer 360: money summary not available")
    else:
        money = await customer_money_summary(session, customer, as_of=now.date())
        view.lifetime_value = dict(money.lifetime_value)
        view.receivables_outstanding = dict(money.outstanding)
        view.receivables_overdue = dict(money.overdue)
        view.active_contracts = int(money.active_contracts)

    try:
        from crm_reporting.service.service_projection import customer_service_summary
    except ImportError:
        log.warning("customer 360: service summary not available")
    else:
        service = await customer_service_summary(session, customer, now)
        view.open_tickets = int(service.open_tickets)
        view.recent_sla_breaches = int(service.recent_sla_breaches)
        view.average_csat = float(service.average_csat)

    try:
        from crm_reporting.service.analytics import score_of
    except ImportError:
        log.warning("customer 360: scores not available")
    else:
        view.score = await score_of(session, customer)
    return view
