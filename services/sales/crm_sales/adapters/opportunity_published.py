"""The published language of opportunities: domain values <-> crm.sales.v1 enums and event payloads.

Used by the API mappers and by the use cases that emit events, so both speak
exactly the same enum names.
"""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from crm.common.v1 import money_pb2
from crm.sales.v1 import common_pb2, events_pb2
from crm.sales.v1 import opportunity_service_pb2 as pb
from crm_sales.domain.opportunities import ForecastCategory, Opportunity, OpportunityState

CATEGORY_TO_PB = {
    ForecastCategory.PIPELINE: common_pb2.FORECAST_CATEGORY_PIPELINE,
    ForecastCategory.BEST_CASE: common_pb2.FORECAST_CATEGORY_BEST_CASE,
    ForecastCategory.COMMIT: common_pb2.FORECAST_CATEGORY_COMMIT,
    ForecastCategory.CLOSED: common_pb2.FORECAST_CATEGORY_CLOSED,
    ForecastCategory.OMITTED: common_pb2.FORECAST_CATEGORY_OMITTED,
}
CATEGORY_FROM_PB = {v: k for k, v in CATEGORY_TO_PB.items()}
STATE_TO_PB = {
    OpportunityState.OPEN: pb.OPPORTUNITY_STATE_OPEN,
    OpportunityState.WON: pb.OPPORTUNITY_STATE_WON,
    OpportunityState.LOST: pb.OPPORTUNITY_STATE_LOST,
}

# Enum names as they appear in filters ("forecast_category = FORECAST_CATEGORY_COMMIT") -> stored values.
CATEGORY_FILTER_VALUES = {common_pb2.ForecastCategory.Name(v): k.value for k, v in CATEGORY_TO_PB.items()}
STATE_FILTER_VALUES = {pb.OpportunityState.Name(v): k.value for k, v in STATE_TO_PB.items()}

SUBJECT_OPPORTUNITY_CREATED = "crm.sales.opportunity.created"
SUBJECT_OPPORTUNITY_UPDATED = "crm.sales.opportunity.updated"
SUBJECT_OPPORTUNITY_DELETED = "crm.sales.opportunity.deleted"
SUBJECT_OPPORTUNITY_STAGE_CHANGED = "crm.sales.opportunity.stage_changed"
SUBJECT_OPPORTUNITY_WON = "crm.sales.opportunity.won"
SUBJECT_OPPORTUNITY_LOST = "crm.sales.opportunity.lost"


def timestamp(moment: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(moment)
    return ts


def money(amount_minor: int, currency_code: str) -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency_code, amount_minor=amount_minor)


def opportunity_snapshot(o: Opportunity) -> events_pb2.OpportunitySnapshot:
    """What other services may know about an opportunity (no personal data: ids and numbers)."""
    return events_pb2.OpportunitySnapshot(
        name=o.name,
        customer=o.customer,
        contact=o.contact,
        title=o.title,
        pipeline=o.pipeline,
        stage=o.stage,
        amount=money(o.amount_minor, o.currency_code),
        probability=o.probability,
        weighted_amount=money(o.weighted_amount_minor, o.currency_code),
        expected_close_time=timestamp(o.expected_close_time),
        forecast_category=CATEGORY_TO_PB[o.forecast_category],
        owner=o.owner,
        team=o.team,
        source_lead=o.source_lead,
        campaign=o.campaign,
        create_time=timestamp(o.create_time),
    )
