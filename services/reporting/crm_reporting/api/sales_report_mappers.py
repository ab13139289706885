"""Sales report results (service.sales_reports dataclasses) to crm.reporting.v1 messages."""

from __future__ import annotations

from crm.common.v1 import money_pb2
from crm.reporting.v1 import sales_report_service_pb2 as rpc
from crm_reporting.service import sales_reports as reports


def money(currency: str, amount_minor: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, amount_minor=amount_minor)


def moneys(amounts: dict[str, int]) -> list[money_pb2.Money]:
    return [money(c, a) for c, a in sorted(amounts.items())]


def funnel_to_pb(funnel: reports.Funnel) -> rpc.FunnelReport:
    return rpc.FunnelReport(
        stages=[
            rpc.FunnelStage(
                stage=s.stage,
                entered=s.entered,
                current=s.current,
                current_amount=moneys(s.current_amount),
                conversion_rate_bp=s.conversion_rate_bp,
                average_days_in_stage=s.average_days_in_stage,
            )
            for s in funnel.stages
        ],
        won=funnel.won,
        lost=funnel.lost,
        win_rate_bp=funnel.win_rate_bp,
    )


def lead_row_to_pb(row: reports.LeadRow) -> rpc.LeadConversionRow:
    message = rpc.LeadConversionRow(
        key=row.key,
        leads=row.leads,
        converted=row.converted,
        conversion_rate_bp=row.conversion_rate_bp,
        won_opportunities=row.won_opportunities,
        won_amount=moneys(row.won_amount),
    )
    if row.cost is not None:
        message.cost.CopyFrom(money(*row.cost))
    if row.cost_per_lead is not None:
        message.cost_per_lead.CopyFrom(money(*row.cost_per_lead))
    if row.acquisition_cost is not None:
        message.acquisition_cost.CopyFrom(money(*row.acquisition_cost))
    return message


def lead_conversion_to_pb(report: reports.LeadConversion) -> rpc.LeadConversionReport:
    return rpc.LeadConversionReport(
        rows=[lead_row_to_pb(r) for r in report.rows], total=lead_row_to_pb(report.total)
    )


def performance_to_pb(rows: list[reports.PerformanceRow]) -> rpc.SalesPerformanceReport:
    result = rpc.SalesPerformanceReport()
    for r in rows:
        message = result.rows.add(
            key=r.key,
            currency_code=r.currency,
            won=r.won,
            lost=r.lost,
            win_rate_bp=r.win_rate_bp,
            booked=money(r.currency, r.booked),
            average_sales_cycle_days=r.average_sales_cycle_days,
        )
        if r.collected is not None:
            message.collected.CopyFrom(money(r.currency, r.collected))
    return result


def forecast_to_pb(rows: list[reports.ForecastRow]) -> rpc.ForecastReport:
    return rpc.ForecastReport(
        rows=[
            rpc.ForecastRow(
                key=r.key,
                currency_code=r.currency,
                pipeline=money(r.currency, r.pipeline),
                best_case=money(r.currency, r.best_case),
                commit=money(r.currency, r.commit),
                weighted=money(r.currency, r.weighted),
                actual=money(r.currency, r.actual),
                attainment_bp=r.attainment_bp,
            )
            for r in rows
        ]
    )
