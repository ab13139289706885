"""Sales reports over gRPC from a scripted history published on CRM_SALES (SQLite and PostgreSQL):
funnel, lead conversion, performance and forecast equal numbers worked out by hand below; a rep
sees only their own numbers; a team or owner outside the caller's scope is PERMISSION_DENIED
REPORT_SCOPE_DENIED; the CSV export carries the same numbers."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import grpc
import pytest
from test_sales_projection import SalesHistory, cny, opportunity, projected, the_app, ts, uid

from crm.common.v1.money_pb2 import Money
from crm.reporting.v1 import common_pb2
from crm.reporting.v1 import export_service_pb2 as export_pb
from crm.reporting.v1 import export_service_pb2_grpc as export_grpc
from crm.reporting.v1 import sales_report_service_pb2 as pb
from crm.reporting.v1 import sales_report_service_pb2_grpc as pb_grpc
from crm.sales.v1 import common_pb2 as sc
from crm.sales.v1 import events_pb2 as ev
from crm_shared.grpc.status import error_details

pytestmark = pytest.mark.asyncio(loop_scope="session")

P = "pipelines/p"
QUALIFY, PROPOSE, WON, LOST = (f"{P}/stages/{s}" for s in ("qualify", "propose", "won", "lost"))
MARCH = common_pb2.Period(
    start_time=ts(datetime(2026, 3, 1, tzinfo=UTC)), end_time=ts(datetime(2026, 4, 1, tzinfo=UTC))
)


def day(d: int, month: int = 3, hour: int = 9) -> datetime:
    return datetime(2026, month, d, hour, tzinfo=UTC)


def usd(amount: int) -> Money:
    return Money(currency_code="USD", amount_minor=amount)


async def script(h: SalesHistory) -> dict[str, str]:
    """The business history of March 2026 (see the test docstrings for the expected numbers)."""
    n = {
        k: uid(prefix)
        for k, prefix in [
            ("C1", "campaigns"),
            ("L1", "leads"),
            ("L2", "leads"),
            ("L3", "leads"),
            ("L4", "leads"),
            ("L5", "leads"),
            ("O1", "opportunities"),
            ("O2", "opportunities"),
            ("O3", "opportunities"),
            ("O4", "opportunities"),
            ("O5", "opportunities"),
            ("O6", "opportunities"),
            ("K1", "customers"),
            ("K2", "customers"),
            ("K3", "customers"),
            ("K4", "customers"),
            ("K5", "customers"),
            ("K6", "customers"),
            ("R1", "orders"),
            ("R3", "orders"),
        ]
    }
    c1 = n["C1"]
    await h.publish(
        ev.CampaignCreated(campaign=ev.CampaignSnapshot(name=c1, channel="EVENT", budget=cny(90_000))),
        c1,
        day(1, 2),
    )
    web, ads, referral = (
        sc.LEAD_SOURCE_CHANNEL_WEB_FORM,
        sc.LEAD_SOURCE_CHANNEL_ADS,
        sc.LEAD_SOURCE_CHANNEL_REFERRAL,
    )
    l1 = await h.lead(n["L1"], day(1), owner="rita", team="east", channel=web, campaign=c1)
    await h.lead(n["L2"], day(2), owner="rita", team="east", channel=ads, campaign=c1)
    l3 = await h.lead(n["L3"], day(2), owner="olga", team="west", channel=ads, campaign=c1)
    l4 = await h.lead(n["L4"], day(3), owner="ron", team="east", channel=referral)
    await h.lead(n["L5"], day(20, 2), owner="rita", team="east", channel=web)  # February: not in the period
    await h.publish(ev.LeadConverted(lead=l1, customer=n["K1"], opportunity=n["O1"]), n["L1"], day(2))
    await h.publish(ev.LeadConverted(lead=l3, customer=n["K3"], opportunity=n["O3"]), n["L3"], day(4))
    await h.publish(ev.LeadDisqualified(lead=l4, reason="spam"), n["L4"], day(4))

    closed = sc.FORECAST_CATEGORY_CLOSED

    async def created(o: str, k: str, amount: int, owner: str, team: str, at: datetime, **extra):
        snap = opportunity(
            n[o],
            customer=n[k],
            stage="qualify",
            amount=amount,
            owner=owner,
            team=team,
            created=at,
            pipeline=P,
            **extra,
        )
        await h.publish(ev.OpportunityCreated(opportunity=snap), n[o], at)
        return snap

    async def move(snap, stage: str, at: datetime, **changes):
        new = ev.OpportunitySnapshot()
        new.CopyFrom(snap)
        new.stage = f"{P}/stages/{stage}"
        for key, value in changes.items():
            setattr(new, key, value)
        if stage == "won":
            new.forecast_category = closed
            await h.publish(ev.OpportunityWon(opportunity=new, won_time=ts(at)), snap.name, at)
        elif stage == "lost":
            new.forecast_category = closed
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

    o1 = await created("O1", "K1", 100_000, "rita", "east", day(2), lead=n["L1"], campaign=c1)
    o1 = await move(o1, "propose", day(5))
    await move(o1, "won", day(10))
    o2 = await created("O2", "K2", 40_000, "rita", "east", day(3))
    o2 = await move(o2, "propose", day(8))
    await move(o2, "lost", day(20))
    o3 = await created("O3", "K3", 60_000, "olga", "west", day(4), lead=n["L3"], campaign=c1)
    await move(o3, "won", day(15))
    o4 = opportunity(
        n["O4"],
        customer=n["K4"],
        stage="qualify",
        amount=30_000,
        owner="ron",
        team="east",
        created=day(6),
        pipeline=P,
        probability=50,
        category=sc.FORECAST_CATEGORY_COMMIT,
        close=day(25),
    )
    o4.amount.CopyFrom(usd(30_000))
    o4.weighted_amount.CopyFrom(usd(15_000))
    await h.publish(ev.OpportunityCreated(opportunity=o4), n["O4"], day(6))
    o5 = await created(
        "O5",
        "K5",
        20_000,
        "rita",
        "east",
        day(7),
        probability=40,
        category=sc.FORECAST_CATEGORY_BEST_CASE,
        close=day(28),
    )
    await move(o5, "propose", day(9))
    o6 = await created("O6", "K6", 10_000, "olga", "west", day(20, 2), close=day(10, 4))
    await move(o6, "propose", day(1, hour=21))

    def line(product: str, net: int) -> ev.OrderLineSnapshot:
        return ev.OrderLineSnapshot(
            product=product, sku=product[-1], quantity=1, amount=cny(net), net_amount=cny(net)
        )

    await h.publish(
        ev.OrderCreated(
            order=n["R1"],
            customer=n["K1"],
            total=cny(100_000),
            owner="rita",
            team="east",
            lines=[line("products/a", 70_000), line("products/b", 30_000)],
        ),
        n["R1"],
        day(11),
    )
    await h.publish(
        ev.OrderCreated(
            order=n["R3"],
            customer=n["K3"],
            total=cny(60_000),
            owner="olga",
            team="west",
            lines=[line("products/a", 60_000)],
        ),
        n["R3"],
        day(16),
    )
    return n


@pytest.fixture
def reports(channel):
    return pb_grpc.SalesReportServiceStub(channel)


async def history(reporting_service) -> dict[str, str]:
    h = SalesHistory(reporting_service.infrastructure.js)
    names = await script(h)
    assert await projected(the_app(reporting_service), await h.marker())
    return names


def query(**fields) -> common_pb2.ReportQuery:
    return common_pb2.ReportQuery(period=MARCH, **fields)


def stages(report: pb.FunnelReport) -> list[tuple]:
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


async def test_funnel_for_everyone_and_for_a_rep(reporting_service, reports, channel, as_user):
    await history(reporting_service)
    admin = as_user("admin", "root", "hq")
    funnel = await reports.GetFunnelReport(pb.GetFunnelReportRequest(query=query()), metadata=admin)
    # Entered in March: qualify O1-O5 (O6 entered in February), propose O1 O2 O5 O6, won O1 O3, lost O2.
    # Days in stages left in March: qualify 3 5 11 2 9.5 -> 6.1; propose 5 12 -> 8.5.
    assert stages(funnel) == [
        (QUALIFY, 5, 1, {"USD": 30_000}, 8000, 6.1),
        (PROPOSE, 4, 2, {"CNY": 30_000}, 5000, 8.5),
        (WON, 2, 2, {"CNY": 160_000}, 0, 0.0),
        (LOST, 1, 1, {"CNY": 40_000}, 0, 0.0),
    ]
    assert (funnel.won, funnel.lost, funnel.win_rate_bp) == (2, 1, 6667)
    same = await reports.GetFunnelReport(pb.GetFunnelReportRequest(query=query(), pipeline=P), metadata=admin)
    assert same == funnel

    rep = as_user("sales_rep", "rita", "east")
    mine = await reports.GetFunnelReport(pb.GetFunnelReportRequest(query=query()), metadata=rep)
    # Rita's O1 O2 O5: qualify 3 days 3 5 2, propose 5 12, one won, one lost.
    assert stages(mine) == [
        (QUALIFY, 3, 0, {}, 10000, round(10 / 3, 4)),
        (PROPOSE, 3, 1, {"CNY": 20_000}, 3333, 8.5),
        (WON, 1, 1, {"CNY": 100_000}, 0, 0.0),
        (LOST, 1, 1, {"CNY": 40_000}, 0, 0.0),
    ]
    assert (mine.won, mine.lost, mine.win_rate_bp) == (1, 1, 5000)
    explicit = await reports.GetFunnelReport(
        pb.GetFunnelReportRequest(query=query(owner="rita")), metadata=rep
    )
    assert explicit == mine

    # Her CSV export holds her numbers only.
    exports = export_grpc.ReportExportServiceStub(channel)
    request = export_pb.ExportReportRequest(kind=export_pb.REPORT_KIND_FUNNEL, query=query())
    body = b"".join([c.data async for c in exports.ExportReport(request, metadata=rep)])
    table = list(csv.reader(io.StringIO(body.decode())))
    assert table[0][:3] == ["stage", "entered", "current"]
    assert [row[:5] for row in table[1:]] == [
        [QUALIFY, "3", "0", "", "0"],
        [PROPOSE, "3", "1", "CNY", "20000"],
        [WON, "1", "1", "CNY", "100000"],
        [LOST, "1", "1", "CNY", "40000"],
        ["won", "1", "", "", ""],
        ["lost", "1", "", "", ""],
    ]


async def test_scope_outside_the_grant_is_denied(reporting_service, reports, as_user):
    await history(reporting_service)
    calls = [
        (
            reports.GetFunnelReport,
            pb.GetFunnelReportRequest(query=query(team="west")),
            as_user("sales_manager", "mia", "east"),
        ),
        (
            reports.GetForecastReport,
            pb.GetForecastReportRequest(query=query(team="west")),
            as_user("sales_manager", "mia", "east"),
        ),
        (
            reports.GetSalesPerformanceReport,
            pb.GetSalesPerformanceReportRequest(query=query(owner="olga")),
            as_user("sales_rep", "rita", "east"),
        ),
    ]
    for call, request, who in calls:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call(request, metadata=who)
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_details(raised.value).reason == "REPORT_SCOPE_DENIED"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await reports.GetFunnelReport(
            pb.GetFunnelReportRequest(query=query()), metadata=as_user("support_agent", "sam", "s")
        )
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED


def lead_rows(report: pb.LeadConversionReport) -> list[tuple]:
    def row(r):
        money = lambda m: (m.currency_code, m.amount_minor) if m.currency_code else None  # noqa: E731
        return (
            r.key,
            r.leads,
            r.converted,
            r.conversion_rate_bp,
            r.won_opportunities,
            {m.currency_code: m.amount_minor for m in r.won_amount},
            money(r.cost),
            money(r.cost_per_lead),
            money(r.acquisition_cost),
        )

    return [row(r) for r in report.rows] + [row(report.total)]


async def test_lead_conversion_by_campaign_channel_and_source(reporting_service, reports, as_user):
    n = await history(reporting_service)
    admin = as_user("marketing", "mo", "mkt")
    by_campaign = await reports.GetLeadConversionReport(
        pb.GetLeadConversionReportRequest(query=query(), group_by=pb.LEAD_GROUPING_CAMPAIGN), metadata=admin
    )
    # March leads: L1 L2 L3 (campaign C1, L1 L3 converted, O1 100000 and O3 60000 won from them) and L4.
    # C1 cost 90000: per lead 90000 / 3; per won customer (K1, K3) 90000 / 2.
    assert lead_rows(by_campaign) == [
        ("", 1, 0, 0, 0, {}, None, None, None),
        (n["C1"], 3, 2, 6667, 2, {"CNY": 160_000}, ("CNY", 90_000), ("CNY", 30_000), ("CNY", 45_000)),
        ("", 4, 2, 5000, 2, {"CNY": 160_000}, ("CNY", 90_000), ("CNY", 22_500), ("CNY", 45_000)),
    ]
    by_channel = await reports.GetLeadConversionReport(
        pb.GetLeadConversionReportRequest(query=query(), group_by=pb.LEAD_GROUPING_CHANNEL), metadata=admin
    )
    assert lead_rows(by_channel) == [
        ("ADS", 2, 1, 5000, 1, {"CNY": 60_000}, None, None, None),
        ("REFERRAL", 1, 0, 0, 0, {}, None, None, None),
        ("WEB_FORM", 1, 1, 10000, 1, {"CNY": 100_000}, None, None, None),
        ("", 4, 2, 5000, 2, {"CNY": 160_000}, None, None, None),
    ]
    by_source = await reports.GetLeadConversionReport(
        pb.GetLeadConversionReportRequest(query=query()), metadata=admin
    )
    assert [r.key for r in by_source.rows] == ["ADS", "REFERRAL", "WEB_FORM"]
    rep = await reports.GetLeadConversionReport(
        pb.GetLeadConversionReportRequest(query=query()), metadata=as_user("sales_rep", "rita", "east")
    )
    assert lead_rows(rep)[-1] == ("", 2, 1, 5000, 1, {"CNY": 100_000}, None, None, None)


def perf_rows(report: pb.SalesPerformanceReport) -> list[tuple]:
    return [
        (
            r.key,
            r.currency_code,
            r.won,
            r.lost,
            r.win_rate_bp,
            r.booked.amount_minor,
            r.collected.amount_minor if r.HasField("collected") else None,
            round(r.average_sales_cycle_days, 4),
        )
        for r in report.rows
    ]


async def test_performance_by_owner_team_month_and_product(reporting_service, reports, as_user):
    await history(reporting_service)
    admin = as_user("admin", "root", "hq")

    async def performance(grouping, who=admin, **q):
        return perf_rows(
            await reports.GetSalesPerformanceReport(
                pb.GetSalesPerformanceReportRequest(query=query(**q), group_by=grouping), metadata=who
            )
        )

    # O1 rita won 100000 (cycle Mar 2 -> Mar 10: 8 days), O2 rita lost, O3 olga won 60000 (11 days).
    # No payments were published: collected is 0.
    assert await performance(pb.PERFORMANCE_GROUPING_OWNER) == [
        ("olga", "CNY", 1, 0, 10000, 60_000, 0, 11.0),
        ("rita", "CNY", 1, 1, 5000, 100_000, 0, 8.0),
    ]
    assert await performance(pb.PERFORMANCE_GROUPING_TEAM) == [
        ("east", "CNY", 1, 1, 5000, 100_000, 0, 8.0),
        ("west", "CNY", 1, 0, 10000, 60_000, 0, 11.0),
    ]
    assert await performance(pb.PERFORMANCE_GROUPING_MONTH) == [
        ("2026-03", "CNY", 2, 1, 6667, 160_000, 0, 9.5)
    ]
    assert await performance(pb.PERFORMANCE_GROUPING_PRODUCT) == [
        ("products/a", "CNY", 0, 0, 0, 130_000, None, 0.0),
        ("products/b", "CNY", 0, 0, 0, 30_000, None, 0.0),
    ]
    manager = as_user("sales_manager", "mia", "east")
    assert await performance(pb.PERFORMANCE_GROUPING_OWNER, manager) == [
        ("rita", "CNY", 1, 1, 5000, 100_000, 0, 8.0)
    ]
    rep = as_user("sales_rep", "rita", "east")
    assert await performance(pb.PERFORMANCE_GROUPING_PRODUCT, rep) == [
        ("products/a", "CNY", 0, 0, 0, 70_000, None, 0.0),
        ("products/b", "CNY", 0, 0, 0, 30_000, None, 0.0),
    ]
    # April: nothing won or lost.
    april = common_pb2.Period(start_time=ts(day(1, 4)), end_time=ts(day(1, 5)))
    empty = await reports.GetSalesPerformanceReport(
        pb.GetSalesPerformanceReportRequest(query=common_pb2.ReportQuery(period=april)), metadata=admin
    )
    assert list(empty.rows) == []


def forecast_rows(report: pb.ForecastReport) -> list[tuple]:
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


async def test_forecast_vs_actual_and_the_csv_export(reporting_service, reports, channel, as_user):
    await history(reporting_service)
    admin = as_user("admin", "root", "hq")
    by_owner = await reports.GetForecastReport(pb.GetForecastReportRequest(query=query()), metadata=admin)
    # Open and closing in March: O4 ron USD commit 30000 (weighted 15000), O5 rita CNY best case 20000
    # (weighted 8000); O6 closes in April. Won in March: rita 100000, olga 60000.
    assert forecast_rows(by_owner) == [
        ("olga", "CNY", 0, 0, 0, 0, 60_000, 10000),
        ("rita", "CNY", 0, 20_000, 0, 8_000, 100_000, 10000),
        ("ron", "USD", 0, 0, 30_000, 15_000, 0, 0),
    ]
    by_team = await reports.GetForecastReport(
        pb.GetForecastReportRequest(query=query(), group_by=pb.PERFORMANCE_GROUPING_TEAM), metadata=admin
    )
    assert forecast_rows(by_team) == [
        ("east", "CNY", 0, 20_000, 0, 8_000, 100_000, 10000),
        ("east", "USD", 0, 0, 30_000, 15_000, 0, 0),
        ("west", "CNY", 0, 0, 0, 0, 60_000, 10000),
    ]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await reports.GetForecastReport(
            pb.GetForecastReportRequest(query=query(), group_by=pb.PERFORMANCE_GROUPING_PRODUCT),
            metadata=admin,
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    exports = export_grpc.ReportExportServiceStub(channel)
    rep = as_user("sales_rep", "rita", "east")
    chunks = [
        c.data
        async for c in exports.ExportReport(
            export_pb.ExportReportRequest(kind=export_pb.REPORT_KIND_FORECAST, query=query()), metadata=rep
        )
    ]
    table = list(csv.reader(io.StringIO(b"".join(chunks).decode())))
    assert table[0][:3] == ["key", "currency_code", "pipeline_minor"]
    assert table[1:] == [["rita", "CNY", "0", "20000", "0", "8000", "100000", "10000"]]
    chunks = [
        c.data
        async for c in exports.ExportReport(
            export_pb.ExportReportRequest(
                kind=export_pb.REPORT_KIND_SALES_PERFORMANCE,
                query=query(),
                group_by="PERFORMANCE_GROUPING_TEAM",
            ),
            metadata=admin,
        )
    ]
    table = list(csv.reader(io.StringIO(b"".join(chunks).decode())))
    assert [row[:6] for row in table[1:]] == [
        ["east", "CNY", "1", "1", "5000", "100000"],
        ["west", "CNY", "1", "0", "10000", "60000"],
    ]


async def test_funnel_counts_a_reentered_stage_once_whatever_the_arrival_order(
    reporting_service, reports, as_user
):
    h = SalesHistory(reporting_service.infrastructure.js)
    q = "pipelines/q"
    opp = uid("opportunities")
    snap = opportunity(
        opp,
        customer=uid("customers"),
        stage="a",
        amount=5_000,
        owner="ron",
        team="east",
        created=day(2),
        pipeline=q,
    )

    def moved(to: str, at: datetime, back: str) -> ev.OpportunityStageChanged:
        new = ev.OpportunitySnapshot()
        new.CopyFrom(snap)
        new.stage = f"{q}/stages/{to}"
        return ev.OpportunityStageChanged(
            opportunity=new, from_stage=f"{q}/stages/{back}", to_stage=new.stage, change_time=ts(at)
        )

    # a (Mar 2) -> b (Mar 3) -> a (Mar 4) -> b (Mar 6), published in a scrambled order.
    await h.publish(moved("b", day(6), "a"), opp, day(6))
    await h.publish(moved("b", day(3), "a"), opp, day(3))
    await h.publish(ev.OpportunityCreated(opportunity=snap), opp, day(2))
    await h.publish(moved("a", day(4), "b"), opp, day(4))
    assert await projected(the_app(reporting_service), await h.marker())
    admin = as_user("admin", "root", "hq")
    march = await reports.GetFunnelReport(
        pb.GetFunnelReportRequest(query=query(), pipeline=q), metadata=admin
    )
    # Entered once each; days in a: 1 and 2 (both left in March), in b: 1 (the second stay is open).
    assert stages(march) == [
        (f"{q}/stages/a", 1, 0, {}, 10000, 1.5),
        (f"{q}/stages/b", 1, 1, {"CNY": 5_000}, 0, 1.0),
    ]
    later = common_pb2.Period(start_time=ts(day(4)), end_time=ts(day(1, 4)))
    from_4th = await reports.GetFunnelReport(
        pb.GetFunnelReportRequest(query=common_pb2.ReportQuery(period=later), pipeline=q), metadata=admin
    )
    # From Mar 4: a entered again (Mar 4), b entered again (Mar 6); stays that ended from Mar 4 on:
    # a's Mar 4-6 (2 days) and b's Mar 3-4 (1 day).
    assert stages(from_4th) == [
        (f"{q}/stages/a", 1, 0, {}, 10000, 2.0),
        (f"{q}/stages/b", 1, 1, {"CNY": 5_000}, 0, 1.0),
    ]
    before = common_pb2.Period(start_time=ts(day(1)), end_time=ts(day(4)))
    first_days = await reports.GetFunnelReport(
        pb.GetFunnelReportRequest(query=common_pb2.ReportQuery(period=before), pipeline=q), metadata=admin
    )
    assert [(s.stage.rsplit("/", 1)[1], s.entered) for s in first_days.stages] == [("a", 1), ("b", 1)]
