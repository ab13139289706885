"""GetReceivablesReport (and its CSV rows) over a small scripted contract history published on the
real NATS stream, on SQLite and PostgreSQL: aging, collection rate and the overdue list equal the
values worked out by hand below; a rep sees only their own numbers; a manager of another team is
refused with REPORT_SCOPE_DENIED."""

from __future__ import annotations

from datetime import UTC, date, datetime

import grpc
import pytest
from contract_history import Deal, Event, at, date_pb, publish, the_app, uid, wait_applied
from google.protobuf.timestamp_pb2 import Timestamp

from crm.contract.v1 import common_pb2 as c_pb
from crm.contract.v1 import events_pb2 as ev
from crm.reporting.v1 import common_pb2, export_service_pb2
from crm.reporting.v1 import export_service_pb2_grpc as export_grpc
from crm.reporting.v1 import finance_report_service_pb2 as pb
from crm.reporting.v1 import finance_report_service_pb2_grpc as pb_grpc
from crm_reporting.service import finance_reports
from crm_shared.grpc.status import error_details
from crm_shared.principal import Principal

pytestmark = pytest.mark.asyncio(loop_scope="session")

AS_OF = date(2026, 6, 30)


def ts(d: date) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(datetime(d.year, d.month, d.day, tzinfo=UTC))
    return t


def history(tag: str) -> tuple[list, dict]:
    """Who owes what, as of 2026-06-30 (whole days past due in brackets)."""
    east, west = f"east-{tag}", f"west-{tag}"
    rita, sam, olga = f"rita-{tag}", f"sam-{tag}", f"olga-{tag}"
    # A (rita): #1 paid; #2 300 - 100 = 200 left, due 05-15 [46] -> 31-60; #3 400 due 07-15 -> current.
    a = Deal(customer=f"customers/a-{tag}", owner=rita, team=east, amount=1000).signed(at(date(2026, 3, 1)))
    a.set_plan(
        at(date(2026, 3, 1), 10),
        [(date(2026, 3, 31), 300), (date(2026, 5, 15), 300), (date(2026, 7, 15), 400)],
    )
    a.pay(at(date(2026, 3, 25)), date(2026, 3, 25), [(1, 300)])
    a.pay(at(date(2026, 6, 10)), date(2026, 6, 10), [(2, 100)])
    # B (sam): #1 500 - 200 = 300 due 02-15 [135] -> over 90; #2 400 due 06-20 [10] -> 1-30 (its
    # payment was voided).
    b = Deal(customer=f"customers/b-{tag}", owner=sam, team=east, amount=900).signed(at(date(2026, 1, 10)))
    b.set_plan(at(date(2026, 1, 10), 10), [(date(2026, 2, 15), 500), (date(2026, 6, 20), 400)])
    b.pay(at(date(2026, 4, 1)), date(2026, 4, 1), [(1, 200)])
    b.pay(at(date(2026, 6, 25)), date(2026, 6, 25), [(2, 400)], voided_at=at(date(2026, 6, 26)))
    # C (olga, USD): 600 due 04-10 [81] -> 61-90, unpaid. D (olga, USD, no plan): 250 current.
    c = Deal(customer=f"customers/c-{tag}", owner=olga, team=west, amount=600, currency="USD").signed(
        at(date(2026, 3, 1))
    )
    c.set_plan(at(date(2026, 3, 1), 10), [(date(2026, 4, 10), 600)])
    d = Deal(customer=f"customers/d-{tag}", owner=olga, team=west, amount=250, currency="USD").signed(
        at(date(2026, 5, 1))
    )
    # E (rita): a draft with a plan owes nothing yet.
    e = Deal(customer=f"customers/e-{tag}", owner=rita, team=east, amount=100)
    e.events.append(
        Event(
            ev.ContractCreated(contract=e.snapshot(c_pb.CONTRACT_STATUS_DRAFT)),
            e.contract,
            at(date(2026, 1, 1)),
        )
    )
    e.set_plan(at(date(2026, 1, 2)), [(date(2026, 1, 31), 100)])
    expected = {
        "aging": {
            (rita, "CNY"): (400, 0, 200, 0, 0, 600),
            (sam, "CNY"): (0, 400, 0, 0, 300, 700),
            (olga, "USD"): (250, 0, 0, 600, 0, 850),
        },
        "aging_by_team": {
            (east, "CNY"): (400, 400, 200, 0, 300, 1300),
            (west, "USD"): (250, 0, 0, 600, 0, 850),
        },
        # Due in [03-01, 06-01): A#1 300 (paid 03-25), A#2 300 (100 paid only on 06-10), C#1 600 USD.
        "collection_east": {"CNY": (600, 300, 5000)},
        "collection_west": {"USD": (600, 0, 0)},
        "collection_rita": {"CNY": (600, 300, 5000)},
        # Most overdue first.
        "overdue_east": [
            (b.installment_name(1), 300, 135),
            (a.installment_name(2), 200, 46),
            (b.installment_name(2), 400, 10),
        ],
        "overdue_rita": [(a.installment_name(2), 200, 46)],
        "a3": a.installment_name(3),
        "names": dict(east=east, west=west, rita=rita, sam=sam, olga=olga),
    }
    return [*a.events, *b.events, *c.events, *d.events, *e.events], expected


def aging_of(report) -> dict:
    return {
        (r.key, r.currency_code): (
            r.current.amount_minor,
            r.days_1_30.amount_minor,
            r.days_31_60.amount_minor,
            r.days_61_90.amount_minor,
            r.days_over_90.amount_minor,
            r.total.amount_minor,
        )
        for r in report.aging
    }


def collection_of(report) -> dict:
    return {
        r.currency_code: (r.due.amount_minor, r.collected.amount_minor, r.collection_rate_bp)
        for r in report.collection
    }


def overdue_of(report) -> list:
    return [(i.installment, i.outstanding.amount_minor, i.days_overdue) for i in report.overdue]


def request(*, team: str = "", owner: str = "", group=pb.RECEIVABLES_GROUPING_OWNER, limit: int = 0):
    return pb.GetReceivablesReportRequest(
        query=common_pb2.ReportQuery(
            period=common_pb2.Period(start_time=ts(date(2026, 3, 1)), end_time=ts(date(2026, 6, 1))),
            team=team,
            owner=owner,
        ),
        as_of=date_pb(AS_OF),
        group_by=group,
        overdue_limit=limit,
    )


async def test_receivables_report_equals_hand_computed_values(reporting_service, channel, as_user):
    app, js = the_app(reporting_service), reporting_service.infrastructure.js
    events, want = history(uid()[:8])
    n = want["names"]
    await publish(js, events)
    await wait_applied(app, events)
    reports = pb_grpc.FinanceReportServiceStub(channel)
    admin = as_user("admin", "root", "hq")

    east = await reports.GetReceivablesReport(request(team=n["east"]), metadata=admin)
    west = await reports.GetReceivablesReport(request(team=n["west"]), metadata=admin)
    assert {**aging_of(east), **aging_of(west)} == want["aging"]
    assert collection_of(east) == want["collection_east"]
    assert collection_of(west) == want["collection_west"]
    assert overdue_of(east) == want["overdue_east"]
    assert east.as_of == date_pb(AS_OF)
    first_two = await reports.GetReceivablesReport(request(team=n["east"], limit=2), metadata=admin)
    assert overdue_of(first_two) == want["overdue_east"][:2]

    finance = as_user("finance", "fiona", "hq")
    for team in ("east", "west"):
        by_team = await reports.GetReceivablesReport(
            request(team=n[team], group=pb.RECEIVABLES_GROUPING_TEAM), metadata=finance
        )
        assert aging_of(by_team) == {k: v for k, v in want["aging_by_team"].items() if k[0] == n[team]}

    # The CSV export rows of the same report.
    principal = Principal(subject="root", roles=frozenset({"admin"}), team="hq")
    query = request(team=n["east"]).query
    async with app.db.read_session() as session:
        header, rows = await finance_reports.export_rows(
            session, app, principal, export_service_pb2.REPORT_KIND_OVERDUE_RECEIVABLES, query, ""
        )
    # The export is as of today: A#3 (due 07-15) is overdue by now too.
    today = datetime.now(UTC).date()
    assert header[0] == "installment"
    assert [(r[0], r[6], r[7]) for r in rows] == [
        (name, amount, (today - due).days)
        for name, amount, due in (
            (want["overdue_east"][0][0], 300, date(2026, 2, 15)),
            (want["overdue_east"][1][0], 200, date(2026, 5, 15)),
            (want["overdue_east"][2][0], 400, date(2026, 6, 20)),
            (want["a3"], 400, date(2026, 7, 15)),
        )
    ]
    async with app.db.read_session() as session:
        header, rows = await finance_reports.export_rows(
            session,
            app,
            principal,
            export_service_pb2.REPORT_KIND_RECEIVABLES_AGING,
            query,
            "RECEIVABLES_GROUPING_TEAM",
        )
    assert header[:2] == ["key", "currency_code"] and rows and all(r[0] == n["east"] for r in rows)


async def test_a_rep_sees_only_their_own_and_other_teams_are_refused(reporting_service, channel, as_user):
    app, js = the_app(reporting_service), reporting_service.infrastructure.js
    events, want = history(uid()[:8])
    n = want["names"]
    await publish(js, events)
    await wait_applied(app, events)
    reports = pb_grpc.FinanceReportServiceStub(channel)

    rita = as_user("sales_rep", n["rita"], n["east"])
    mine = await reports.GetReceivablesReport(request(), metadata=rita)
    assert aging_of(mine) == {(n["rita"], "CNY"): want["aging"][(n["rita"], "CNY")]}
    assert collection_of(mine) == want["collection_rita"]
    assert overdue_of(mine) == want["overdue_rita"]

    # Her CSV export (as of today, through the export service) holds only her installments too.
    exports = export_grpc.ReportExportServiceStub(channel)
    body = b"".join(
        [
            chunk.data
            async for chunk in exports.ExportReport(
                export_service_pb2.ExportReportRequest(
                    kind=export_service_pb2.REPORT_KIND_OVERDUE_RECEIVABLES, query=request().query
                ),
                metadata=rita,
            )
        ]
    )
    lines = body.decode().splitlines()
    assert lines[0].startswith("installment,contract,customer,owner")
    assert sorted((line.split(",")[3], line.split(",")[6]) for line in lines[1:]) == [
        (n["rita"], "200"),
        (n["rita"], "400"),
    ]

    manager = as_user("sales_manager", "mona", n["east"])
    team = await reports.GetReceivablesReport(request(), metadata=manager)
    assert set(aging_of(team)) == {(n["rita"], "CNY"), (n["sam"], "CNY")}

    west_manager = as_user("sales_manager", "walt", n["west"])
    for denied, metadata in (
        (request(team=n["east"]), west_manager),
        (request(owner=n["sam"]), rita),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await reports.GetReceivablesReport(denied, metadata=metadata)
        details = error_details(failure.value)
        assert details.code is grpc.StatusCode.PERMISSION_DENIED
        assert details.reason == "REPORT_SCOPE_DENIED"
