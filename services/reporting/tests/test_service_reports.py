"""GetServiceReport over gRPC from servicedesk events on real NATS (SQLite and PostgreSQL): values
computed by hand, per agent and per team; a support agent sees only their own row; asking outside
the scope is PERMISSION_DENIED; the SERVICE export has the same numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from test_service_projection import Ticket, the_app, ts, uid, wait_ticket

from crm.reporting.v1 import common_pb2 as common
from crm.reporting.v1 import export_service_pb2
from crm.reporting.v1 import service_report_service_pb2 as pb
from crm.reporting.v1 import service_report_service_pb2_grpc as pb_grpc
from crm.servicedesk.v1 import common_pb2 as sdc
from crm_reporting.service import service_reports
from crm_shared.grpc.status import error_details
from crm_shared.principal import Principal

pytestmark = pytest.mark.asyncio(loop_scope="session")

H = timedelta(hours=1)


def stats(**values) -> pb.ServiceStats:
    return pb.ServiceStats(**values)


async def history(reporting_service):
    app, js = the_app(reporting_service), reporting_service.infrastructure.js
    team, ann, bob = f"team-{uid()}", f"ann-{uid()}", f"bob-{uid()}"
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    customer = f"customers/{uid()}"
    a = Ticket(customer, assignee=ann, team=team, created=t0).responded(t0 + H, 600).resolved(t0 + 4 * H)
    a.csat(t0 + 5 * H, 5, fcr=True)
    b = Ticket(customer, assignee=ann, team=team, created=t0 + H).breached(
        t0 + 3 * H, sdc.SLA_METRIC_FIRST_RESPONSE
    )
    c = Ticket(customer, assignee=bob, team=team, created=t0 + 2 * H).responded(t0 + 3 * H, 1200)
    c.resolved(t0 + 5 * H).csat(t0 + 6 * H, 3, fcr=False)
    # Outside the period: created long before, never resolved (it is still backlog).
    d = Ticket(customer, assignee=bob, team=team, created=t0 - timedelta(days=30))
    for ticket in (a, b, c, d):
        await ticket.publish(js)
    assert await wait_ticket(app, d.name, assignee=bob)
    assert await wait_ticket(app, b.name, first_response_breached=True)
    query = common.ReportQuery(
        period=common.Period(start_time=ts(t0 - H), end_time=ts(t0 + timedelta(days=1))), team=team
    )
    return app, team, ann, bob, query


ANN = dict(
    tickets_created=2,
    tickets_resolved=1,
    backlog=1,
    first_response_sla_met_bp=5000,
    resolution_sla_met_bp=10000,
    sla_breaches=1,
    average_first_response_seconds=600.0,
    median_first_response_seconds=600.0,
    average_resolution_seconds=4 * 3600.0,
    csat_responses=1,
    csat_average=5.0,
    csat_satisfied_bp=10000,
    first_contact_resolution_bp=10000,
)
BOB = dict(
    tickets_created=1,
    tickets_resolved=1,
    backlog=1,
    first_response_sla_met_bp=10000,
    resolution_sla_met_bp=10000,
    average_first_response_seconds=1200.0,
    median_first_response_seconds=1200.0,
    average_resolution_seconds=3 * 3600.0,
    csat_responses=1,
    csat_average=3.0,
)
TOTAL = dict(
    tickets_created=3,
    tickets_resolved=2,
    backlog=2,
    first_response_sla_met_bp=6667,
    resolution_sla_met_bp=10000,
    sla_breaches=1,
    average_first_response_seconds=900.0,
    median_first_response_seconds=900.0,
    average_resolution_seconds=3.5 * 3600,
    csat_responses=2,
    csat_average=4.0,
    csat_satisfied_bp=5000,
    first_contact_resolution_bp=5000,
)


async def test_service_report_by_agent_team_and_scope(reporting_service, channel, as_user):
    app, team, ann, bob, query = await history(reporting_service)
    reports = pb_grpc.ServiceReportServiceStub(channel)

    report = await reports.GetServiceReport(
        pb.GetServiceReportRequest(query=query), metadata=as_user("admin")
    )
    assert report.total == stats(**TOTAL)
    assert [(r.key, r.stats) for r in report.rows] == sorted([(ann, stats(**ANN)), (bob, stats(**BOB))])

    by_team = await reports.GetServiceReport(
        pb.GetServiceReportRequest(query=query, group_by=pb.SERVICE_GROUPING_TEAM),
        metadata=as_user("support_manager", "sam", team="elsewhere"),
    )
    assert [(r.key, r.stats) for r in by_team.rows] == [(team, stats(**TOTAL))]

    own = await reports.GetServiceReport(
        pb.GetServiceReportRequest(query=query), metadata=as_user("support_agent", ann, team=team)
    )
    assert [r.key for r in own.rows] == [ann]
    assert own.total == stats(**ANN)

    for metadata, request in (
        (
            as_user("support_agent", ann, team=team),
            pb.GetServiceReportRequest(query=common.ReportQuery(owner=bob)),
        ),
        (as_user("sales_rep", "rita", team=team), pb.GetServiceReportRequest(query=query)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await reports.GetServiceReport(request, metadata=metadata)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED

    with pytest.raises(grpc.aio.AioRpcError) as outside:
        await reports.GetServiceReport(
            pb.GetServiceReportRequest(query=common.ReportQuery(owner=bob)),
            metadata=as_user("support_agent", ann, team=team),
        )
    assert error_details(outside.value).reason == "REPORT_SCOPE_DENIED"

    # The CSV export's rows carry the same numbers, then the total.
    admin = Principal(subject="root", roles=frozenset({"admin"}))
    async with app.db.read_session() as session:
        header, rows = await service_reports.export_rows(
            session, app, admin, export_service_pb2.REPORT_KIND_SERVICE, query, "SERVICE_GROUPING_AGENT"
        )
    assert header[0] == "key" and len(header) == len(rows[0])
    assert [row[0] for row in rows] == [*sorted([ann, bob]), "TOTAL"]
    assert rows[-1][1:4] == [3, 2, 2]
    assert rows[-1][11] == 4.0
