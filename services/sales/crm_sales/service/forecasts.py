"""The forecast query: totals by forecast category, closed-won and weighted pipeline for one period.

One indexed GROUP BY (currency, state, category) inside the caller's data scope;
the domain combines the groups (crm_sales.domain.opportunities.aggregate_forecast).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from crm_sales.adapters.opportunity_repository import OpportunityRepository
from crm_sales.app import SalesApp
from crm_sales.domain import opportunities as rules
from crm_sales.domain.opportunities import ForecastTotals
from crm_shared.errors import InvalidArgument, Violations
from crm_shared.principal import Principal

RESOURCE = "forecasts"
MAX_PERIOD = timedelta(days=5 * 366)


@dataclass(frozen=True)
class ForecastQuery:
    start: datetime
    end: datetime
    currency_code: str
    owner: str = ""
    team: str = ""
    pipeline: str = ""  # "pipelines/{p}" or ""


async def get_forecast(
    session: AsyncSession, app: SalesApp, principal: Principal, query: ForecastQuery
) -> ForecastTotals:
    grant = app.policy.grant(principal, RESOURCE, "read")
    violations = Violations()
    if query.end <= query.start:
        violations.add("end_time", "must be after start_time")
    elif query.end - query.start > MAX_PERIOD:
        violations.add("end_time", "the period may span at most 5 years")
    pipeline_id = ""
    if query.pipeline:
        pipeline_id = rules.resource_id(query.pipeline, "pipelines") or ""
        if not pipeline_id:
            violations.add("pipeline", "must look like pipelines/{pipeline}")
    if len(query.currency_code) != 3 or not query.currency_code.isupper():
        raise InvalidArgument.for_field("currency_code", "must be an ISO-4217 code like CNY")
    violations.raise_if_any("the forecast request has invalid fields")
    groups = await OpportunityRepository(session).forecast_groups(
        OpportunityRepository.in_scope(grant),
        start=query.start,
        end=query.end,
        owner=query.owner,
        team=query.team,
        pipeline_id=pipeline_id,
    )
    return rules.aggregate_forecast(groups, query.currency_code)
