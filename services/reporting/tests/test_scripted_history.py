"""One scripted business history published as events on the real streams (customer, sales,
contract, servicedesk), on SQLite and PostgreSQL; every report equals numbers worked out by hand
from the script below (never by calling the reporting code), and a rep sees only their own.

The script (days from `base`, 09:00 UTC; the period is days 0-30):
  customers K1 (rita/east), K2 (rita/east), K3 (olga/west), created day 0
  leads L1 web form + campaign C1 (rita, day 1), L2 ads + C1 (olga, day 1), L3 referral (rita,
    day 2, disqualified day 3); L1 -> K1/O1 day 2, L2 -> K3/O3 day 3
  O1 K1 rita 100 000 CNY: qualify day 2 -> propose day 5 -> won day 10
  O2 K2 rita  40 000 CNY: qualify day 3 -> lost day 13
  O3 K3 olga  60 000 CNY: qualify day 3 -> propose day 8 -> won day 15
  O4 K2 rita  20 000 CNY: qualify day 6, open, commit, 50 %, closing day 25
  contract K1 100 000 signed day 11, installments 50 000 due day 20 and 50 000 due day 35;
    payment 50 000 received day 18 (installment 1); 20 000 received day 25, voided day 26
  contract K3 60 000 signed day 16, one installment due day 45
  tickets (agent sam, team support): T1 K1 created day 12, first response breached +3 h, open;
    T2 K2 created day 14, answered after 600 business seconds, resolved +5 h, CSAT 4 (first contact)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from contract_history import Deal
from contract_history import publish as publish_contract
from contract_history import wait_applied as contract_applied
from google.type import date_pb2
from test_customer_projection import create_customer, wait_applied
from test_sales_projection import SalesHistory, opportunity, projected, uid
from test_service_projection import Ticket, wait_ticket

from crm.common.v1.money_pb2 import Money
from crm.reporting.v1 import common_pb2
from crm.reporting.v1 import customer_insight_service_pb2 as ci
from crm.reporting.v1 import customer_insight_service_pb2_grpc as ci_grpc
from crm.reporting.v1 import finance_report_service_pb2 as fin
from crm.reporting.v1 import finance_report_service_pb2_grpc as fin_grpc
from crm.reporting.v1 import sales_report_service_pb2 as sr
from crm.reporting.v1 import sales_report_service_pb2_grpc as sr_grpc
from crm.reporting.v1 import service_report_service_pb2 as svc
from crm.reporting.v1 import service_report_service_pb2_grpc as svc_grpc
from crm.sales.v1 import common_pb2 as sc
from crm.sales.v1 import events_pb2 as ev
from crm.servicedesk.v1 import common_pb2 as sdc
from crm_reporting.consumers import ProjectionConsumer

pytestmark = pytest.mark.asyncio(loop_scope="session")

BASE = datetime.combine((datetime.now(UTC) - timedelta(days=50)).date(), datetime.min.time(), tzinfo=UTC)
P = "pipelines/main"
QUALIFY, PROPOSE, WON, LOST = (f"{P}/stages/{s}" for s in ("qualify", "propose", "won", "lost"))


def d(n: float, hour: int = 9) -> datetime:
    return BASE + timedelta(days=n, hours=hour)


def ts(when: datetime):
    from google.protobuf.timestamp_pb2 import Timestamp

    out = Timestamp()
    out.FromDatetime(when)
    return out


def period_query(**fields) -> common_pb2.ReportQuery:
    return common_pb2.ReportQuery(
        period=common_pb2.Period(start_time=ts(BASE), end_time=ts(BASE + timedelta(days=30))), **fields
    )


def cny(amount: int) -> Money:
    return Money(currency_code="CNY", amount_minor=amount)


async def script(reporting_service) -> dict[str, str]:  # noqa: PLR0915
    js = reporting_service.infrastructure.js
    app = next(w for w in reporting_service.parts.workers if isinstance(w, ProjectionConsumer)).app
    n = {k: f"customers/{uid('x').split('/')[-1]}" for k in ("K1", "K2", "K3")}
    n.update({k: uid("leads") for k in ("L1", "L2", "L3")})
    n.update({k: uid("opportunities") for k in ("O1", "O2", "O3", "O4")})
    n["C1"] = uid("campaigns")

    # Customers.
    await create_customer(js, n["K1"], owner="rita", team="east")
    await create_customer(js, n["K2"], owner="rita", team="east")
    last_customer = await create_customer(js, n["K3"], owner="olga", team="west")

    # Sales.
    h = SalesHistory(js)
    web, ads, referral = (
        sc.LEAD_SOURCE_CHANNEL_WEB_FORM,
        sc.LEAD_SOURCE_CHANNEL_ADS,
        sc.LEAD_SOURCE_CHANNEL_REFERRAL,
    )
    l1 = await h.lead(n["L1"], d(1), owner="rita", team="east", channel=web, campaign=n["C1"])
    l2 = await h.lead(n["L2"], d(1), owner="olga", team="west", channel=ads, campaign=n["C1"])
    l3 = await h.lead(n["L3"], d(2), owner="rita", team="east", channel=referral)
    await h.publish(ev.LeadDisqualified(lead=l3, reason="no budget"), n["L3"], d(3))
    await h.publish(ev.LeadConverted(lead=l1, customer=n["K1"], opportunity=n["O1"]), n["L1"], d(2))
    await h.publish(ev.LeadConverted(lead=l2, customer=n["K3"], opportunity=n["O3"]), n["L2"], d(3))

    async def created(o, k, amount, owner, team, at, **extra):
        snap = opportunity(
            n[o], customer=n[k], stage="qualify", amount=amount, owner=owner, team=team, created=at, **extra
        )
        await h.publish(ev.OpportunityCreated(opportunity=snap), n[o], at)
        return snap

    async def move(snap, stage, at):
        new = ev.OpportunitySnapshot()
        new.CopyFrom(snap)
        new.stage = f"{P}/stages/{stage}"
        if stage == "won":
            new.forecast_category = sc.FORECAST_CATEGORY_CLOSED
            await h.publish(ev.OpportunityWon(opportunity=new, won_time=ts(at)), snap.name, at)
        elif stage == "lost":
            new.forecast_category = sc.FORECAST_CATEGORY_CLOSED
            await h.publish(ev.OpportunityLost(opportunity=new, lost_time=ts(at)), snap.name, at)
        else:
            await h.publish(
                ev.OpportunityStageChanged(
                    opportunity=new, from_stage=snap.stage, to_stage=new.stage, change_time=ts(at)
                ),
                snap.name,
                at,
            )
        return new

    o1 = await created("O1", "K1", 100_000, "rita", "east", d(2), lead=n["L1"], campaign=n["C1"])
    o1 = await move(o1, "propose", d(5))
    await move(o1, "won", d(10))
    o2 = await created("O2", "K2", 40_000, "rita", "east", d(3))
    await move(o2, "lost", d(13))
    o3 = await created("O3", "K3", 60_000, "olga", "west", d(3), lead=n["L2"], campaign=n["C1"])
    o3 = await move(o3, "propose", d(8))
    await move(o3, "won", d(15))
    await created(
        "O4",
        "K2",
        20_000,
        "rita",
        "east",
        d(6),
        probability=50,
        category=sc.FORECAST_CATEGORY_COMMIT,
        close=d(25),
    )

    # Contracts and payments.
    k1 = Deal(n["K1"], "rita", "east", 100_000).signed(d(11))
    k1.set_plan(d(11), [((d(20)).date(), 50_000), ((d(35)).date(), 50_000)])
    k1.pay(d(18), d(18).date(), [(1, 50_000)])
    k1.pay(d(25), d(25).date(), [(2, 20_000)], voided_at=d(26))
    k3 = Deal(n["K3"], "olga", "west", 60_000).signed(d(16))
    k3.set_plan(d(16), [((d(45)).date(), 60_000)])
    contract_events = k1.events + k3.events
    await publish_contract(js, contract_events)

    # Tickets.
    t1 = Ticket(n["K1"], assignee="sam", team="support", created=d(12)).breached(
        d(12) + timedelta(hours=3), sdc.SLA_METRIC_FIRST_RESPONSE
    )
    t2 = Ticket(n["K2"], assignee="sam", team="support", created=d(14)).responded(
        d(14) + timedelta(hours=1), 600
    )
    t2.resolved(d(14) + timedelta(hours=5)).csat(d(14) + timedelta(hours=6), 4, fcr=True)
    await t1.publish(js)
    await t2.publish(js)
    n["T1"], n["T2"] = t1.name, t2.name

    # Every stream applied.
    await wait_applied(app, last_customer)
    assert await projected(app, await h.marker())
    await contract_applied(app, contract_events)
    assert await wait_ticket(app, t1.name, first_response_breached=True)
    assert await wait_ticket(app, t2.name, status=sdc.TICKET_STATUS_RESOLVED)
    return n


def funnel_rows(report: sr.FunnelReport) -> list[tuple]:
    return [
        (
            s.stage,
            s.entered,
            s.current,
            {m.currency_code: m.amount_minor for m in s.current_amount},
            s.conversion_rate_bp,
            round(s.average_days_in_stage, 4),
        )
        for s in report.stages
    ]


def bp(numerator: int, denominator: int) -> int:
    return round(10_000 * numerator / denominator) if denominator else 0


async def test_every_report_equals_the_script(reporting_service, channel, as_user):  # noqa: PLR0915
    n = await script(reporting_service)
    admin, rita = as_user("admin", "root", "hq"), as_user("sales_rep", "rita", "east")
    sales = sr_grpc.SalesReportServiceStub(channel)

    # --- funnel: entered qualify O1-O4, propose O1 O3, won O1 O3, lost O2 --------------------------
    funnel = await sales.GetFunnelReport(sr.GetFunnelReportRequest(query=period_query()), metadata=admin)
    assert funnel_rows(funnel) == [
        (QUALIFY, 4, 1, {"CNY": 20_000}, bp(2, 4), round((3 + 10 + 5) / 3, 4)),
        (PROPOSE, 2, 0, {}, bp(2, 2), round((5 + 7) / 2, 4)),
        (WON, 2, 2, {"CNY": 160_000}, 0, 0.0),
        (LOST, 1, 1, {"CNY": 40_000}, 0, 0.0),
    ]
    assert (funnel.won, funnel.lost, funnel.win_rate_bp) == (2, 1, bp(2, 3))
    # Rita: O1 O2 O4.
    mine = await sales.GetFunnelReport(sr.GetFunnelReportRequest(query=period_query()), metadata=rita)
    assert funnel_rows(mine) == [
        (QUALIFY, 3, 1, {"CNY": 20_000}, bp(1, 3), round((3 + 10) / 2, 4)),
        (PROPOSE, 1, 0, {}, bp(1, 1), 5.0),
        (WON, 1, 1, {"CNY": 100_000}, 0, 0.0),
        (LOST, 1, 1, {"CNY": 40_000}, 0, 0.0),
    ]
    assert (mine.won, mine.lost, mine.win_rate_bp) == (1, 1, bp(1, 2))

    # --- lead conversion by channel and campaign ------------------------------------------------------
    def lead_rows(report):
        rows = [*report.rows, report.total]
        return [
            (
                r.key,
                r.leads,
                r.converted,
                r.conversion_rate_bp,
                r.won_opportunities,
                {m.currency_code: m.amount_minor for m in r.won_amount},
            )
            for r in rows
        ]

    by_channel = await sales.GetLeadConversionReport(
        sr.GetLeadConversionReportRequest(query=period_query(), group_by=sr.LEAD_GROUPING_CHANNEL),
        metadata=admin,
    )
    assert lead_rows(by_channel) == [
        ("ADS", 1, 1, 10_000, 1, {"CNY": 60_000}),
        ("REFERRAL", 1, 0, 0, 0, {}),
        ("WEB_FORM", 1, 1, 10_000, 1, {"CNY": 100_000}),
        ("", 3, 2, bp(2, 3), 2, {"CNY": 160_000}),
    ]
    by_campaign = await sales.GetLeadConversionReport(
        sr.GetLeadConversionReportRequest(query=period_query(), group_by=sr.LEAD_GROUPING_CAMPAIGN),
        metadata=admin,
    )
    assert sorted(lead_rows(by_campaign)[:-1]) == [
        ("", 1, 0, 0, 0, {}),
        (n["C1"], 2, 2, 10_000, 2, {"CNY": 160_000}),
    ]

    # --- sales performance: booked = won amounts, collected = 50 000 + 20 000 - 20 000 voided --------
    def perf_rows(report):
        return [
            (
                r.key,
                r.currency_code,
                r.won,
                r.lost,
                r.win_rate_bp,
                r.booked.amount_minor,
                r.collected.amount_minor,
                r.average_sales_cycle_days,
            )
            for r in report.rows
        ]

    performance = await sales.GetSalesPerformanceReport(
        sr.GetSalesPerformanceReportRequest(query=period_query()), metadata=admin
    )
    assert perf_rows(performance) == [
        ("olga", "CNY", 1, 0, 10_000, 60_000, 0, 12.0),
        ("rita", "CNY", 1, 1, 5_000, 100_000, 50_000, 8.0),
    ]
    own = await sales.GetSalesPerformanceReport(
        sr.GetSalesPerformanceReportRequest(query=period_query()), metadata=rita
    )
    assert perf_rows(own) == [("rita", "CNY", 1, 1, 5_000, 100_000, 50_000, 8.0)]

    # --- forecast: O4 commit 20 000 (weighted 10 000) closes in the period; actual = won ------------
    def forecast_rows(report):
        return [
            (
                r.key,
                r.currency_code,
                r.pipeline.amount_minor,
                r.best_case.amount_minor,
                r.commit.amount_minor,
                r.weighted.amount_minor,
                r.actual.amount_minor,
                r.attainment_bp,
            )
            for r in report.rows
        ]

    forecast = await sales.GetForecastReport(
        sr.GetForecastReportRequest(query=period_query()), metadata=admin
    )
    assert forecast_rows(forecast) == [
        ("olga", "CNY", 0, 0, 0, 0, 60_000, 10_000),
        ("rita", "CNY", 0, 0, 20_000, 10_000, 100_000, bp(100_000, 120_000)),
    ]

    # --- receivables as of day 40: K1 installment 2 (50 000, 5 days overdue), K3 60 000 current ------
    finance = fin_grpc.FinanceReportServiceStub(channel)
    as_of = d(40).date()
    receivables = await finance.GetReceivablesReport(
        fin.GetReceivablesReportRequest(
            as_of=date_pb2.Date(year=as_of.year, month=as_of.month, day=as_of.day)
        ),
        metadata=admin,
    )
    aging = {
        (r.key, r.currency_code): (
            r.current.amount_minor,
            r.days_1_30.amount_minor,
            r.days_31_60.amount_minor,
            r.days_61_90.amount_minor,
            r.days_over_90.amount_minor,
            r.total.amount_minor,
        )
        for r in receivables.aging
    }
    assert aging == {
        ("olga", "CNY"): (60_000, 0, 0, 0, 0, 60_000),
        ("rita", "CNY"): (0, 50_000, 0, 0, 0, 50_000),
    }
    assert [(o.customer, o.outstanding.amount_minor, o.days_overdue) for o in receivables.overdue] == [
        (n["K1"], 50_000, 5)
    ]
    rita_receivables = await finance.GetReceivablesReport(
        fin.GetReceivablesReportRequest(as_of=receivables.as_of), metadata=rita
    )
    assert [r.key for r in rita_receivables.aging] == ["rita"]

    # --- service: sam 2 tickets, 1 resolved, 1 breach, CSAT 4 -----------------------------------------
    service = svc_grpc.ServiceReportServiceStub(channel)
    report = await service.GetServiceReport(svc.GetServiceReportRequest(query=period_query()), metadata=admin)
    assert [r.key for r in report.rows] == ["sam"]
    s = report.total
    assert (s.tickets_created, s.tickets_resolved, s.backlog, s.sla_breaches) == (2, 1, 1, 1)
    assert (s.first_response_sla_met_bp, s.resolution_sla_met_bp) == (bp(1, 2), 10_000)
    assert (s.average_first_response_seconds, s.average_resolution_seconds) == (600.0, 5 * 3600.0)
    assert (s.csat_responses, s.csat_average, s.csat_satisfied_bp, s.first_contact_resolution_bp) == (
        1,
        4.0,
        10_000,
        10_000,
    )

    # --- customer 360 of K1 --------------------------------------------------------------------------
    insights = ci_grpc.CustomerInsightServiceStub(channel)
    view = await insights.GetCustomer360(ci.GetCustomer360Request(customer=n["K1"]), metadata=rita)
    assert (view.won_opportunities, view.open_opportunities, view.active_contracts) == (1, 0, 1)
    assert list(view.lifetime_value) == [cny(50_000)]
    assert list(view.receivables_outstanding) == [cny(50_000)]
    assert list(view.receivables_overdue) == [cny(50_000)]  # due day 35, today is day 50
    assert (view.open_tickets, view.recent_sla_breaches, view.average_csat) == (1, 1, 0.0)
    kinds = [e.kind for e in view.timeline]
    assert {
        "customer_created",
        "opportunity_created",
        "opportunity_won",
        "contract_signed",
        "ticket_created",
        "sla_breached",
    } <= set(kinds)
    times = [e.time.ToDatetime() for e in view.timeline]
    assert times == sorted(times, reverse=True)
    assert view.profile.last_deal_time.ToDatetime().replace(tzinfo=UTC) == d(10)
    k2 = await insights.GetCustomer360(ci.GetCustomer360Request(customer=n["K2"]), metadata=rita)
    assert (k2.open_opportunities, list(k2.open_pipeline), k2.average_csat) == (1, [cny(20_000)], 4.0)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await insights.GetCustomer360(ci.GetCustomer360Request(customer=n["K3"]), metadata=rita)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND

    # --- analytics (CNY): revenue K1 50 000, K2 and K3 none -------------------------------------------
    analytics = await insights.GetCustomerAnalytics(
        ci.GetCustomerAnalyticsRequest(query=period_query(), currency_code="CNY"), metadata=admin
    )
    assert analytics.customers == 3
    abc = {a.abc_class: (a.customers, a.revenue.amount_minor, a.revenue_share_bp) for a in analytics.abc}
    assert abc[common_pb2.ABC_CLASS_A] == (1, 50_000, 10_000)
    assert analytics.top_20_percent_revenue_share_bp == 10_000
