"""Customer 360 view <-> protobuf."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf.message import Message

from crm.common.v1 import money_pb2
from crm.reporting.v1 import customer_insight_service_pb2 as rpc
from crm_reporting.service.customer_360 import Customer360View


def _set_time(target, field_name: str, value: datetime | None) -> None:
    if value is not None:
        getattr(target, field_name).FromDatetime(value)


def money_list(amounts: dict[str, int]) -> list[money_pb2.Money]:
    """One Money per currency, sorted by currency (no conversion between currencies)."""
    return [money_pb2.Money(currency_code=c, amount_minor=int(a)) for c, a in sorted(amounts.items()) if c]


def _get(item: Any, name: str, default: Any = None) -> Any:
    return item.get(name, default) if isinstance(item, dict) else getattr(item, name, default)


def score_to_pb(score: Any) -> rpc.CustomerScore:
    """R5's CustomerScore (a message, a dataclass or a mapping) as the API message."""
    if isinstance(score, rpc.CustomerScore):
        return score
    if isinstance(score, Message):
        out = rpc.CustomerScore()
        out.ParseFromString(score.SerializeToString())
        return out
    out = rpc.CustomerScore(
        customer=_get(score, "customer", ""),
        abc_class=int(_get(score, "abc_class", 0) or 0),
        rfm_segment=_get(score, "rfm_segment", "") or "",
        recency_score=int(_get(score, "recency_score", 0) or 0),
        frequency_score=int(_get(score, "frequency_score", 0) or 0),
        monetary_score=int(_get(score, "monetary_score", 0) or 0),
        health_score=int(_get(score, "health_score", 0) or 0),
        churn_risk=int(_get(score, "churn_risk", 0) or 0),
        owner=_get(score, "owner", "") or "",
        team=_get(score, "team", "") or "",
    )
    for factor in _get(score, "factors", None) or []:
        out.factors.add(
            name=_get(factor, "name", ""),
            value=float(_get(factor, "value", 0.0) or 0.0),
            impact=int(_get(factor, "impact", 0) or 0),
            explanation=_get(factor, "explanation", ""),
        )
    _set_time(out, "compute_time", _get(score, "compute_time", None))
    return out


def customer_360_to_pb(view: Customer360View) -> rpc.Customer360:
    p = view.profile
    profile = rpc.CustomerProfile(
        display_name=p.display_name,
        kind=p.kind,
        industry=p.industry,
        tier=p.tier,
        lifecycle_stage=p.lifecycle_stage,
        owner=p.owner,
        team=p.team,
        tags=list(p.tags),
    )
    _set_time(profile, "create_time", p.create_time)
    _set_time(profile, "last_follow_up_time", p.last_follow_up_time)
    _set_time(profile, "last_deal_time", view.last_deal_time)
    _set_time(profile, "last_activity_time", p.last_activity_time)
    out = rpc.Customer360(
        customer=view.customer,
        profile=profile,
        lifetime_value=money_list(view.lifetime_value),
        open_pipeline=money_list(view.open_pipeline),
        receivables_outstanding=money_list(view.receivables_outstanding),
        receivables_overdue=money_list(view.receivables_overdue),
        open_opportunities=view.open_opportunities,
        won_opportunities=view.won_opportunities,
        active_contracts=view.active_contracts,
        open_tickets=view.open_tickets,
        recent_sla_breaches=view.recent_sla_breaches,
        average_csat=view.average_csat,
        purchases=p.purchases,
        abandoned_carts=p.abandoned_carts,
    )
    for entry in view.timeline:
        item = out.timeline.add(
            kind=entry.kind, resource=entry.resource, summary=entry.summary, actor=entry.actor
        )
        item.time.FromDatetime(entry.time)
        if entry.currency:
            item.amount.CopyFrom(
                money_pb2.Money(currency_code=entry.currency, amount_minor=entry.amount_minor)
            )
    if view.score is not None:
        out.score.CopyFrom(score_to_pb(view.score))
    _set_time(out, "as_of", view.as_of)
    return out
