"""The four sales reports (funnel, lead conversion, performance, forecast) and their CSV export.

Each applies the caller's scope on `sales_reports` (a rep's numbers are their own; a team or
owner outside the grant is PERMISSION_DENIED REPORT_SCOPE_DENIED) and the query's period, and
aggregates in SQL (adapters.sales_queries). Amounts are per currency, never converted.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from crm.reporting.v1 import export_service_pb2 as export_pb
from crm.reporting.v1 import sales_report_service_pb2 as rpc
from crm_reporting.adapters import sales_queries as q
from crm_reporting.domain import sales_metrics as metrics
from crm_reporting.service.report_scope import report_scope
from crm_shared.errors import InvalidArgument

RESOURCE = "sales_reports"


# --- results --------------------------------------------------------------------------------------


@dataclass
class FunnelStage:
    stage: str
    entered: int = 0
    current: int = 0
    current_amount: dict[str, int] = field(default_factory=dict)
    conversion_rate_bp: int = 0
    average_days_in_stage: float = 0.0


@dataclass
class Funnel:
    stages: list[FunnelStage]
    won: int
    lost: int
    win_rate_bp: int


@dataclass
class LeadRow:
    key: str
    leads: int = 0
    converted: int = 0
    conversion_rate_bp: int = 0
    won_opportunities: int = 0
    won_amount: dict[str, int] = field(default_factory=dict)
    # (currency, minor) when a cost is known (campaign grouping).
    cost: tuple[str, int] | None = None
    cost_per_lead: tuple[str, int] | None = None
    acquisition_cost: tuple[str, int] | None = None


@dataclass
class LeadConversion:
    rows: list[LeadRow]
    total: LeadRow


@dataclass
class PerformanceRow:
    key: str
    currency: str
    won: int = 0
    lost: int = 0
    win_rate_bp: int = 0
    booked: int = 0
    # None: not applicable (product grouping has no collected amounts).
    collected: int | None = 0
    average_sales_cycle_days: float = 0.0


@dataclass
class ForecastRow:
    key: str
    currency: str
    pipeline: int = 0
    best_case: int = 0
    commit: int = 0
    weighted: int = 0
    actual: int = 0
    attainment_bp: int = 0


LEAD_GROUPS = {
    rpc.LEAD_GROUPING_UNSPECIFIED: "source",
    rpc.LEAD_GROUPING_SOURCE: "source",
    rpc.LEAD_GROUPING_CHANNEL: "channel",
    rpc.LEAD_GROUPING_CAMPAIGN: "campaign",
}
PERFORMANCE_GROUPS = {
    rpc.PERFORMANCE_GROUPING_UNSPECIFIED: "owner",
    rpc.PERFORMANCE_GROUPING_OWNER: "owner",
    rpc.PERFORMANCE_GROUPING_TEAM: "team",
    rpc.PERFORMANCE_GROUPING_PRODUCT: "product",
    rpc.PERFORMANCE_GROUPING_MONTH: "month",
}
FORECAST_GROUPS = {
    rpc.PERFORMANCE_GROUPING_UNSPECIFIED: "owner",
    rpc.PERFORMANCE_GROUPING_OWNER: "owner",
    rpc.PERFORMANCE_GROUPING_TEAM: "team",
}


def _group(table: dict[int, str], value: int, field_path: str) -> str:
    if value not in table:
        raise InvalidArgument.for_field(field_path, "grouping not supported by this report")
    return table[value]


def _scope(deps, principal, query_pb):
    return report_scope(deps, principal, RESOURCE, query_pb)


# --- funnel ---------------------------------------------------------------------------------------


async def funnel_report(session, deps, principal, query_pb, pipeline: str = "") -> Funnel:
    if pipeline and not pipeline.startswith("pipelines/"):
        raise InvalidArgument.for_field("pipeline", 'must be "pipelines/{pipeline}"')
    scope = _scope(deps, principal, query_pb)
    stage_rows = await q.stages_entered_and_days(session, scope, pipeline)
    current_rows = await q.stages_current(session, scope, pipeline)
    won, lost = await q.won_lost(session, scope, pipeline)
    first_seen = await q.stages_first_seen(session, pipeline)

    stages: dict[str, FunnelStage] = {}

    def stage(name: str) -> FunnelStage:
        return stages.setdefault(name, FunnelStage(stage=name))

    for name, _, entered, seconds in stage_rows:
        if entered or seconds is not None:
            s = stage(name)
            s.entered += entered
            s.average_days_in_stage = metrics.days(seconds)
    for name, _, currency, count, amount in current_rows:
        s = stage(name)
        s.current += count
        s.current_amount[currency] = s.current_amount.get(currency, 0) + amount

    pipeline_of = {name: first_seen[name][0] for name in first_seen}
    closing_of = {name: first_seen[name][2] for name in first_seen}
    seen = {name: first_seen[name][1] for name in first_seen if name in stages}
    order = metrics.funnel_order(seen, pipeline_of, closing_of)
    order += sorted(name for name in stages if name not in seen)
    following = metrics.next_in_pipeline(order, pipeline_of, closing_of)
    for name in order:
        nxt = following.get(name)
        if nxt:
            stages[name].conversion_rate_bp = metrics.rate_bp(stages[nxt].entered, stages[name].entered)
    return Funnel(
        stages=[stages[name] for name in order],
        won=won,
        lost=lost,
        win_rate_bp=metrics.win_rate_bp(won, lost),
    )


# --- lead conversion ------------------------------------------------------------------------------


async def lead_conversion_report(session, deps, principal, query_pb, group_by: int) -> LeadConversion:
    group = _group(LEAD_GROUPS, group_by, "group_by")
    scope = _scope(deps, principal, query_pb)
    rows: dict[str, LeadRow] = {}
    for key, leads, converted in await q.lead_counts(session, scope, group):
        rows[key] = LeadRow(key=key, leads=leads, converted=converted)
    total = LeadRow(key="")
    for key, currency, count, amount in await q.lead_wins(session, scope, group):
        row = rows.setdefault(key, LeadRow(key=key))
        row.won_opportunities += count
        row.won_amount[currency] = row.won_amount.get(currency, 0) + amount
        total.won_amount[currency] = total.won_amount.get(currency, 0) + amount
        total.won_opportunities += count
    for row in rows.values():
        row.conversion_rate_bp = metrics.rate_bp(row.converted, row.leads)
        total.leads += row.leads
        total.converted += row.converted
    total.conversion_rate_bp = metrics.rate_bp(total.converted, total.leads)

    if group == "campaign":
        customers = await q.lead_won_customers(session, scope, group)
        budgets = await q.campaign_budgets(session, [k for k in rows if k])
        totals: dict[str, int] = defaultdict(int)
        for key, (currency, budget) in budgets.items():
            row = rows[key]
            row.cost = (currency, budget)
            row.cost_per_lead = (currency, metrics.divide_money(budget, row.leads))
            row.acquisition_cost = (currency, metrics.divide_money(budget, customers.get(key, 0)))
            totals[currency] += budget
        if len(totals) == 1:
            # The total's cost is defined only when every known campaign budget is in one currency.
            [(currency, budget)] = totals.items()
            won_customers = await q.lead_won_customers_total(session, scope)
            total.cost = (currency, budget)
            total.cost_per_lead = (currency, metrics.divide_money(budget, total.leads))
            total.acquisition_cost = (currency, metrics.divide_money(budget, won_customers))
    return LeadConversion(rows=[rows[k] for k in sorted(rows)], total=total)


# --- performance ----------------------------------------------------------------------------------


async def _collected(session, scope, group: str) -> dict[tuple[str, str], int]:
    from crm_reporting.service import contract_projection

    return await contract_projection.collected_amounts(session, scope, group=group)


async def performance_report(session, deps, principal, query_pb, group_by: int) -> list[PerformanceRow]:
    group = _group(PERFORMANCE_GROUPS, group_by, "group_by")
    scope = _scope(deps, principal, query_pb)
    rows: dict[tuple[str, str], PerformanceRow] = {}
    if group == "product":
        for product, currency, booked in await q.product_bookings(session, scope):
            rows[(product, currency)] = PerformanceRow(
                key=product, currency=currency, booked=booked, collected=None
            )
    else:
        for key, currency, won, lost, booked, cycle in await q.performance(session, scope, group):
            rows[(key, currency)] = PerformanceRow(
                key=key,
                currency=currency,
                won=won,
                lost=lost,
                win_rate_bp=metrics.win_rate_bp(won, lost),
                booked=booked,
                average_sales_cycle_days=metrics.days(cycle),
            )
        for (key, currency), amount in (await _collected(session, scope, group)).items():
            rows.setdefault((key, currency), PerformanceRow(key=key, currency=currency)).collected = amount
    return [rows[k] for k in sorted(rows)]


# --- forecast -------------------------------------------------------------------------------------


async def forecast_report(session, deps, principal, query_pb, group_by: int) -> list[ForecastRow]:
    group = _group(FORECAST_GROUPS, group_by, "group_by")
    scope = _scope(deps, principal, query_pb)
    rows: dict[tuple[str, str], ForecastRow] = {}
    for key, currency, pipeline, best, commit, weighted in await q.forecast_open(session, scope, group):
        rows[(key, currency)] = ForecastRow(
            key=key, currency=currency, pipeline=pipeline, best_case=best, commit=commit, weighted=weighted
        )
    for (key, currency), actual in (await q.won_amounts(session, scope, group)).items():
        rows.setdefault((key, currency), ForecastRow(key=key, currency=currency)).actual = actual
    for row in rows.values():
        row.attainment_bp = metrics.attainment_bp(row.actual, row.commit)
    return [rows[k] for k in sorted(rows)]


# --- export ---------------------------------------------------------------------------------------


def _enum_value(enum_type, name: str, field_path: str = "group_by") -> int:
    if not name:
        return 0
    try:
        return enum_type.Value(name)
    except ValueError as exc:
        raise InvalidArgument.for_field(field_path, f"unknown grouping {name!r} for this report") from exc


def _money_cells(value: tuple[str, int] | None) -> list:
    return ["", ""] if value is None else [value[0], value[1]]


async def export_rows(
    session, deps, principal, kind: int, query_pb, group_by: str
) -> tuple[list[str], list[list]]:
    """(header, rows) of a sales report for ReportExportService; amounts in minor units per currency."""
    if kind == export_pb.REPORT_KIND_FUNNEL:
        funnel = await funnel_report(session, deps, principal, query_pb)
        header = [
            "stage",
            "entered",
            "current",
            "currency_code",
            "current_amount_minor",
            "conversion_rate_bp",
            "average_days_in_stage",
        ]
        rows = []
        for s in funnel.stages:
            for currency, amount in sorted(s.current_amount.items()) or [("", 0)]:
                rows.append(
                    [
                        s.stage,
                        s.entered,
                        s.current,
                        currency,
                        amount,
                        s.conversion_rate_bp,
                        s.average_days_in_stage,
                    ]
                )
        rows.append(["won", funnel.won, "", "", "", funnel.win_rate_bp, ""])
        rows.append(["lost", funnel.lost, "", "", "", "", ""])
        return header, rows
    if kind == export_pb.REPORT_KIND_LEAD_CONVERSION:
        report = await lead_conversion_report(
            session, deps, principal, query_pb, _enum_value(rpc.LeadGrouping, group_by)
        )
        header = [
            "key",
            "leads",
            "converted",
            "conversion_rate_bp",
            "won_opportunities",
            "won_amount",
            "cost_currency_code",
            "cost_minor",
            "cost_per_lead_currency_code",
            "cost_per_lead_minor",
            "acquisition_cost_currency_code",
            "acquisition_cost_minor",
        ]
        rows = []
        for r in [*report.rows, report.total]:
            won = " ".join(f"{c}:{a}" for c, a in sorted(r.won_amount.items()))
            rows.append(
                [
                    r.key if r is not report.total else "(total)",
                    r.leads,
                    r.converted,
                    r.conversion_rate_bp,
                    r.won_opportunities,
                    won,
                    *_money_cells(r.cost),
                    *_money_cells(r.cost_per_lead),
                    *_money_cells(r.acquisition_cost),
                ]
            )
        return header, rows
    if kind == export_pb.REPORT_KIND_SALES_PERFORMANCE:
        report = await performance_report(
            session, deps, principal, query_pb, _enum_value(rpc.PerformanceGrouping, group_by)
        )
        header = [
            "key",
            "currency_code",
            "won",
            "lost",
            "win_rate_bp",
            "booked_minor",
            "collected_minor",
            "average_sales_cycle_days",
        ]
        return header, [
            [
                r.key,
                r.currency,
                r.won,
                r.lost,
                r.win_rate_bp,
                r.booked,
                r.collected,
                r.average_sales_cycle_days,
            ]
            for r in report
        ]
    if kind == export_pb.REPORT_KIND_FORECAST:
        report = await forecast_report(
            session, deps, principal, query_pb, _enum_value(rpc.PerformanceGrouping, group_by)
        )
        header = [
            "key",
            "currency_code",
            "pipeline_minor",
            "best_case_minor",
            "commit_minor",
            "weighted_minor",
            "actual_minor",
            "attainment_bp",
        ]
        return header, [
            [r.key, r.currency, r.pipeline, r.best_case, r.commit, r.weighted, r.actual, r.attainment_bp]
            for r in report
        ]
    raise InvalidArgument.for_field("kind", "not a sales report")
