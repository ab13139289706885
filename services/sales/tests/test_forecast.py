"""ForecastService on both databases: the numbers equal an independent computation from the opportunities
themselves (read back through the API), within the caller's data scope."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime
from fractions import Fraction

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from crm.common.v1 import money_pb2
from crm.sales.v1 import common_pb2
from crm.sales.v1 import forecast_service_pb2 as fpb
from crm.sales.v1 import forecast_service_pb2_grpc as frpc
from crm.sales.v1 import opportunity_service_pb2 as pb
from crm.sales.v1 import opportunity_service_pb2_grpc as rpc_grpc
from crm_shared.grpc.status import error_details

pytestmark = pytest.mark.asyncio(loop_scope="session")

STAGES = "pipelines/default/stages/"
START, END = "2026-01-01T00:00:00", "2028-01-01T00:00:00"
CATEGORY_ORDER = [
    common_pb2.FORECAST_CATEGORY_PIPELINE,
    common_pb2.FORECAST_CATEGORY_BEST_CASE,
    common_pb2.FORECAST_CATEGORY_COMMIT,
    common_pb2.FORECAST_CATEGORY_CLOSED,
    common_pb2.FORECAST_CATEGORY_OMITTED,
]


def ts(text: str) -> Timestamp:
    moment = Timestamp()
    moment.FromDatetime(datetime.fromisoformat(text).replace(tzinfo=UTC))
    return moment


async def seed(channel, as_user) -> None:
    """Deals of bob and carol (team east) and wes (team west) in every state, stage and currency case."""
    stub = rpc_grpc.OpportunityServiceStub(channel)
    users = {
        "bob": as_user("sales_rep", "bob", team="east"),
        "carol": as_user("sales_rep", "carol", team="east"),
        "wes": as_user("sales_rep", "wes", team="west"),
    }

    async def deal(owner, amount, *, currency="CNY", close="2027-03-15T00:00:00", stage="", probability=None):
        opportunity = pb.Opportunity(
            customer=f"customers/{uuid.uuid4()}",
            title=f"{owner} {amount}",
            amount=money_pb2.Money(currency_code=currency, amount_minor=amount),
            expected_close_time=ts(close),
        )
        if probability is not None:
            opportunity.probability = probability
        created = await stub.CreateOpportunity(
            pb.CreateOpportunityRequest(opportunity=opportunity), metadata=users[owner]
        )
        if stage:
            await stub.MoveOpportunityStage(
                pb.MoveOpportunityStageRequest(
                    name=created.name, stage=STAGES + stage, probability=probability
                )
                if probability is not None
                else pb.MoveOpportunityStageRequest(name=created.name, stage=STAGES + stage),
                metadata=users[owner],
            )
        return created.name

    await deal("bob", 100_001)  # qualification 10 %: 10_000.1 -> 10_000
    await deal("bob", 333_333, stage="proposal")  # 50 %: 166_666.5 -> 166_666 (half to even)
    await deal("bob", 77_777, stage="negotiation", probability=85)  # 66_110.45 -> 66_110
    await deal("bob", 1_000_005, probability=3)  # override in qualification: 30_000.15 -> 30_000
    won = await deal("bob", 250_000, stage="negotiation")
    await stub.WinOpportunity(pb.WinOpportunityRequest(name=won), metadata=users["bob"])
    lost = await deal("bob", 40_000, stage="proposal")
    await stub.LoseOpportunity(
        pb.LoseOpportunityRequest(name=lost, lost_reason="budget"), metadata=users["bob"]
    )
    await deal("bob", 900_000, close="2029-06-01T00:00:00")  # outside the period
    await deal("bob", 12_345, currency="USD", stage="proposal")  # another currency
    await deal("carol", 50_000, stage="proposal")
    await deal("carol", 75_075, stage="negotiation")  # 56_306.25 -> 56_306
    await deal("wes", 1_000_000, stage="negotiation")


def independent_forecast(opportunities, *, currency: str, owner: str = "", team: str = ""):
    """From the opportunities as the API shows them, with Fraction arithmetic (round() is half-to-even)."""
    start = datetime.fromisoformat(START).replace(tzinfo=UTC)
    end = datetime.fromisoformat(END).replace(tzinfo=UTC)
    categories = defaultdict(lambda: [0, 0, 0])
    closed_won = [0, 0, 0]
    weighted_pipeline = 0
    excluded = defaultdict(int)
    for o in opportunities:
        if (owner and o.owner != owner) or (team and o.team != team):
            continue
        is_open = o.state == pb.OPPORTUNITY_STATE_OPEN
        moment = (o.expected_close_time if is_open else o.close_time).ToDatetime(tzinfo=UTC)
        if not start <= moment < end:
            continue
        if o.amount.currency_code != currency:
            excluded[o.amount.currency_code] += 1
            continue
        weighted = round(Fraction(o.amount.amount_minor * o.probability, 100))
        row = categories[o.forecast_category]
        row[0] += 1
        row[1] += o.amount.amount_minor
        row[2] += weighted
        if o.state == pb.OPPORTUNITY_STATE_WON:
            closed_won = [closed_won[0] + 1, closed_won[1] + o.amount.amount_minor, closed_won[2] + weighted]
        elif is_open and o.forecast_category != common_pb2.FORECAST_CATEGORY_OMITTED:
            weighted_pipeline += weighted
    return {
        "categories": [tuple(categories[c]) for c in CATEGORY_ORDER],
        "closed_won": tuple(closed_won),
        "weighted_pipeline": weighted_pipeline,
        "expected_total": closed_won[1] + weighted_pipeline,
        "excluded": dict(excluded),
    }


def as_numbers(forecast: fpb.Forecast, currency: str):
    def total(t: fpb.ForecastTotal):
        assert t.amount.currency_code == currency and t.weighted_amount.currency_code == currency
        return (t.opportunity_count, t.amount.amount_minor, t.weighted_amount.amount_minor)

    assert [c.category for c in forecast.categories] == CATEGORY_ORDER
    return {
        "categories": [total(c.total) for c in forecast.categories],
        "closed_won": total(forecast.closed_won),
        "weighted_pipeline": forecast.weighted_pipeline.amount_minor,
        "expected_total": forecast.expected_total.amount_minor,
        "excluded": {e.currency_code: e.opportunity_count for e in forecast.excluded_currencies},
    }


def request(**fields) -> fpb.GetForecastRequest:
    return fpb.GetForecastRequest(start_time=ts(START), end_time=ts(END), currency_code="CNY", **fields)


async def test_forecast_equals_an_independent_computation_in_every_scope(channel, as_user):
    await seed(channel, as_user)
    admin = as_user("admin", "root")
    stub = rpc_grpc.OpportunityServiceStub(channel)
    everything = (
        await stub.ListOpportunities(pb.ListOpportunitiesRequest(page_size=500), metadata=admin)
    ).opportunities
    assert len(everything) == 11
    forecasts = frpc.ForecastServiceStub(channel)

    bob = as_numbers(
        await forecasts.GetForecast(request(owner="bob"), metadata=as_user("sales_rep", "bob", team="east")),
        "CNY",
    )
    assert bob == independent_forecast(everything, currency="CNY", owner="bob")
    # Spelled out once, so a wrong independent computation cannot hide a wrong service:
    assert bob["categories"] == [
        (2, 1_100_006, 40_000),  # qualification: 10_000 + 30_000
        (1, 333_333, 166_666),  # proposal
        (1, 77_777, 66_110),  # negotiation at 85 %
        (1, 250_000, 250_000),  # won
        (1, 40_000, 0),  # lost
    ]
    assert bob["closed_won"] == (1, 250_000, 250_000)
    assert bob["weighted_pipeline"] == 40_000 + 166_666 + 66_110
    assert bob["expected_total"] == 250_000 + 272_776
    assert bob["excluded"] == {"USD": 1}

    meg = as_user("sales_manager", "meg", team="east")
    east = as_numbers(await forecasts.GetForecast(request(team="east"), metadata=meg), "CNY")
    assert east == independent_forecast(everything, currency="CNY", team="east")
    assert east["categories"][2] == (2, 77_777 + 75_075, 66_110 + 56_306)

    # Scope applies inside the query: another team, or a colleague, comes back empty, not as an error.
    west_for_meg = as_numbers(await forecasts.GetForecast(request(team="west"), metadata=meg), "CNY")
    assert west_for_meg["categories"] == [(0, 0, 0)] * 5 and west_for_meg["weighted_pipeline"] == 0
    bob_asks_team = as_numbers(
        await forecasts.GetForecast(request(team="east"), metadata=as_user("sales_rep", "bob", team="east")),
        "CNY",
    )
    assert bob_asks_team == bob

    everyone = as_numbers(await forecasts.GetForecast(request(), metadata=admin), "CNY")
    assert everyone == independent_forecast(everything, currency="CNY")
    usd = as_numbers(
        await forecasts.GetForecast(
            fpb.GetForecastRequest(start_time=ts(START), end_time=ts(END), currency_code="USD"),
            metadata=admin,
        ),
        "USD",
    )
    assert usd == independent_forecast(everything, currency="USD")
    assert usd["categories"][1] == (1, 12_345, 6_172)  # 6_172.5 -> 6_172 (half to even)


async def test_forecast_rejects_bad_periods_and_roles_without_access(channel, as_user):
    forecasts = frpc.ForecastServiceStub(channel)
    admin = as_user("admin", "root")
    for bad, field in (
        (fpb.GetForecastRequest(start_time=ts(END), end_time=ts(START), currency_code="CNY"), "end_time"),
        (
            fpb.GetForecastRequest(start_time=ts(START), end_time=ts(END), currency_code="cny"),
            "currency_code",
        ),
        (fpb.GetForecastRequest(end_time=ts(END), currency_code="CNY"), "start_time"),
        (
            fpb.GetForecastRequest(
                start_time=ts("2020-01-01T00:00:00"), end_time=ts(END), currency_code="CNY"
            ),
            "end_time",
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await forecasts.GetForecast(bad, metadata=admin)
        details = error_details(caught.value)
        assert details.code == grpc.StatusCode.INVALID_ARGUMENT, details.message
        assert field in details.field_violations, details.field_violations
    for role in ("analyst", "finance"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await forecasts.GetForecast(request(), metadata=as_user(role, "x", team=""))
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
