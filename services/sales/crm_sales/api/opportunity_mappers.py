"""Protobuf <-> domain for pipelines, opportunities and forecasts."""

from __future__ import annotations

from datetime import UTC

from crm.sales.v1 import forecast_service_pb2 as fpb
from crm.sales.v1 import opportunity_service_pb2 as pb
from crm_sales.adapters.opportunity_published import (
    CATEGORY_FROM_PB,
    CATEGORY_TO_PB,
    STATE_TO_PB,
    money,
    timestamp,
)
from crm_sales.domain.opportunities import (
    FORECAST_CATEGORIES,
    ID_PATTERN,
    ForecastTotals,
    Opportunity,
    OpportunityInput,
    Pipeline,
    PipelineInput,
    ProductLineInput,
    StageInput,
    Total,
    stage_ids,
)
from crm_shared.aip.etag import etag_for
from crm_shared.errors import InvalidArgument


def _id_from(name: str, collection: str, field: str) -> str:
    prefix, _, found = name.partition("/")
    if prefix != collection or not found or "/" in found:
        raise InvalidArgument.for_field(field, f"must look like {collection}/{{id}}")
    return found


def opportunity_id_from(name: str, *, field: str = "name") -> str:
    return _id_from(name, "opportunities", field)


def pipeline_id_from(name: str, *, field: str = "name") -> str:
    found = _id_from(name, "pipelines", field)
    if not ID_PATTERN.match(found):
        raise InvalidArgument.for_field(field, "must look like pipelines/{id}")
    return found


# --- pipelines ----------------------------------------------------------------------------------


def pipeline_input(message: pb.Pipeline) -> PipelineInput:
    stages = []
    for index, stage in enumerate(message.stages):
        stage_id = ""
        if stage.name:
            ids = stage_ids(stage.name)
            if ids is None or (message.name and f"pipelines/{ids[0]}" != message.name):
                raise InvalidArgument.for_field(
                    f"pipeline.stages[{index}].name",
                    "must be a stage of this pipeline, or empty for a new one",
                )
            stage_id = ids[1]
        stages.append(
            StageInput(
                id=stage_id,
                display_name=stage.display_name,
                default_probability=stage.default_probability,
                forecast_category=CATEGORY_FROM_PB.get(stage.forecast_category),
                is_won=stage.is_won,
                is_lost=stage.is_lost,
            )
        )
    return PipelineInput(
        display_name=message.display_name, currency_code=message.currency_code, stages=tuple(stages)
    )


def pipeline_to_pb(pipeline: Pipeline) -> pb.Pipeline:
    return pb.Pipeline(
        name=pipeline.name,
        display_name=pipeline.display_name,
        currency_code=pipeline.currency_code,
        stages=[
            pb.Stage(
                name=pipeline.stage_name(s.id),
                display_name=s.display_name,
                order=s.position,
                default_probability=s.default_probability,
                forecast_category=CATEGORY_TO_PB[s.forecast_category],
                is_won=s.is_won,
                is_lost=s.is_lost,
            )
            for s in pipeline.stages
        ],
        is_default=pipeline.is_default,
        create_time=timestamp(pipeline.create_time),
        update_time=timestamp(pipeline.update_time),
        etag=etag_for(pipeline.id, pipeline.version),
    )


# --- opportunities ------------------------------------------------------------------------------


def opportunity_input(message: pb.Opportunity) -> OpportunityInput:
    has_amount = message.HasField("amount")
    return OpportunityInput(
        customer=message.customer,
        title=message.title,
        amount_minor=message.amount.amount_minor if has_amount else None,
        currency_code=message.amount.currency_code if has_amount else "",
        expected_close_time=message.expected_close_time.ToDatetime(tzinfo=UTC)
        if message.HasField("expected_close_time")
        else None,
        pipeline=message.pipeline,
        stage=message.stage,
        probability=message.probability if message.HasField("probability") else None,
        owner=message.owner,
        team=message.team,
        contact=message.contact,
        product_lines=tuple(
            ProductLineInput(
                display_name=line.display_name,
                quantity=line.quantity,
                unit_price_minor=line.unit_price.amount_minor,
                currency_code=line.unit_price.currency_code,
                product=line.product,
                sku=line.sku,
            )
            for line in message.product_lines
        ),
        competitor=message.competitor,
        source_lead=message.source_lead,
        campaign=message.campaign,
    )


def opportunity_to_pb(o: Opportunity) -> pb.Opportunity:
    message = pb.Opportunity(
        name=o.name,
        customer=o.customer,
        contact=o.contact,
        title=o.title,
        amount=money(o.amount_minor, o.currency_code),
        expected_close_time=timestamp(o.expected_close_time),
        pipeline=o.pipeline,
        stage=o.stage,
        probability=o.probability,
        probability_overridden=o.probability_overridden,
        weighted_amount=money(o.weighted_amount_minor, o.currency_code),
        forecast_category=CATEGORY_TO_PB[o.forecast_category],
        state=STATE_TO_PB[o.state],
        owner=o.owner,
        team=o.team,
        product_lines=[
            pb.ProductLine(
                product=line.product,
                sku=line.sku,
                display_name=line.display_name,
                quantity=line.quantity,
                unit_price=money(line.unit_price_minor, o.currency_code),
                line_amount=money(line.amount_minor, o.currency_code),
            )
            for line in o.product_lines
        ],
        competitor=o.competitor,
        lost_reason=o.lost_reason,
        source_lead=o.source_lead,
        campaign=o.campaign,
        stage_history=[
            pb.StageHistoryEntry(
                stage=e.stage_name,
                enter_time=timestamp(e.enter_time),
                changed_by=e.changed_by,
                amount=money(e.amount_minor, e.currency_code),
                probability=e.probability,
                forecast_category=CATEGORY_TO_PB[e.forecast_category],
            )
            for e in o.history
        ],
        create_time=timestamp(o.create_time),
        update_time=timestamp(o.update_time),
        etag=etag_for(o.id, o.version),
    )
    if o.close_time is not None:
        message.close_time.CopyFrom(timestamp(o.close_time))
    return message


# --- forecasts ----------------------------------------------------------------------------------


def _total(total: Total, currency: str) -> fpb.ForecastTotal:
    return fpb.ForecastTotal(
        opportunity_count=total.count,
        amount=money(total.amount_minor, currency),
        weighted_amount=money(total.weighted_minor, currency),
    )


def forecast_to_pb(totals: ForecastTotals, request: fpb.GetForecastRequest) -> fpb.Forecast:
    currency = totals.currency_code
    return fpb.Forecast(
        owner=request.owner,
        team=request.team,
        start_time=request.start_time,
        end_time=request.end_time,
        currency_code=currency,
        categories=[
            fpb.ForecastCategoryTotal(
                category=CATEGORY_TO_PB[category], total=_total(totals.categories[category], currency)
            )
            for category in FORECAST_CATEGORIES
        ],
        closed_won=_total(totals.closed_won, currency),
        weighted_pipeline=money(totals.weighted_pipeline_minor, currency),
        expected_total=money(totals.expected_total_minor, currency),
        excluded_currencies=[
            fpb.ExcludedCurrency(currency_code=code, opportunity_count=count)
            for code, count in totals.excluded_currencies.items()
        ],
    )
