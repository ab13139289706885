"""Analytics results -> crm.reporting.v1 messages (scores, their list response, CustomerAnalytics)."""

from __future__ import annotations

from datetime import UTC

from crm.common.v1 import money_pb2
from crm.reporting.v1 import customer_insight_service_pb2 as rpc
from crm.reporting.v1 import events_pb2


def score_to_pb(score) -> rpc.CustomerScore:
    out = rpc.CustomerScore(
        customer=score.customer,
        abc_class=score.abc_class,
        rfm_segment=score.rfm_segment,
        recency_score=score.recency_score,
        frequency_score=score.frequency_score,
        monetary_score=score.monetary_score,
        health_score=score.health_score,
        churn_risk=score.churn_risk,
        owner=score.owner,
        team=score.team,
        factors=[events_pb2.ScoreFactor(**factor) for factor in score.factors],
    )
    compute_time = score.compute_time
    if compute_time is not None:
        if compute_time.tzinfo is None:
            compute_time = compute_time.replace(tzinfo=UTC)
        out.compute_time.FromDatetime(compute_time)
    return out


def scores_response(page) -> rpc.ListCustomerScoresResponse:
    return rpc.ListCustomerScoresResponse(
        scores=[score_to_pb(s) for s in page.items], next_page_token=page.next_page_token
    )


def analytics_to_pb(result) -> rpc.CustomerAnalytics:
    return rpc.CustomerAnalytics(
        abc=[
            rpc.AbcClassSummary(
                abc_class=a.abc_class,
                customers=a.customers,
                revenue=money_pb2.Money(currency_code=result.currency, amount_minor=a.revenue_minor),
                revenue_share_bp=a.revenue_share_bp,
            )
            for a in result.abc
        ],
        top_20_percent_revenue_share_bp=result.top_20_percent_revenue_share_bp,
        rfm_segments=[rpc.SegmentCount(segment=s, customers=n) for s, n in result.rfm_segments],
        lifecycle_stages=[rpc.SegmentCount(segment=s, customers=n) for s, n in result.lifecycle_stages],
        churn_risks=[rpc.SegmentCount(segment=s, customers=n) for s, n in result.churn_risks],
        churn_rate_bp=result.churn_rate_bp,
        average_health_score=result.average_health_score,
        customers=result.customers,
    )
