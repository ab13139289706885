"""ExportReport: streamed CSV equal to the report RPC's numbers, in the caller's scope, on both
databases; CSV writing (quoting, chunking) on its own."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from contract_history import Deal, at, publish, wait_applied
from test_customer_projection import customer_name, the_app

from crm.reporting.v1 import common_pb2
from crm.reporting.v1 import export_service_pb2 as pb
from crm.reporting.v1 import export_service_pb2_grpc as pb_grpc
from crm.reporting.v1 import finance_report_service_pb2 as fin
from crm.reporting.v1 import finance_report_service_pb2_grpc as fin_grpc
from crm_reporting.service.exports import CONTENT_TYPE, csv_chunks

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_csv_chunks_quote_and_split():
    rows = [[i, f"name, with comma {i}", 'say "hi"\nnext line', None, True] for i in range(3000)]
    chunks = list(csv_chunks(["id", "name", "text", "empty", "flag"], rows, chunk_bytes=16 * 1024))
    assert len(chunks) > 1 and all(len(c) < 20 * 1024 for c in chunks)
    parsed = list(csv.reader(io.StringIO(b"".join(chunks).decode("utf-8"))))
    assert parsed[0] == ["id", "name", "text", "empty", "flag"]
    assert parsed[1:] == [
        [str(i), f"name, with comma {i}", 'say "hi"\nnext line', "", "true"] for i in range(3000)
    ]
    assert list(csv_chunks(["only"], [])) == [b"only\r\n"]


async def export_csv(channel, metadata, kind: int, query=None, group_by: str = "") -> list[dict[str, str]]:
    stub = pb_grpc.ReportExportServiceStub(channel)
    request = pb.ExportReportRequest(kind=kind, group_by=group_by)
    if query is not None:
        request.query.CopyFrom(query)
    body = b""
    async for chunk in stub.ExportReport(request, metadata=metadata):
        assert chunk.content_type == CONTENT_TYPE
        body += chunk.data
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"))))


def aging_by_key(report: fin.ReceivablesReport) -> dict[tuple[str, str], list[int]]:
    return {
        (r.key, r.currency_code): [
            r.current.amount_minor,
            r.days_1_30.amount_minor,
            r.days_31_60.amount_minor,
            r.days_61_90.amount_minor,
            r.days_over_90.amount_minor,
            r.total.amount_minor,
        ]
        for r in report.aging
    }


def csv_by_key(rows: list[dict[str, str]]) -> dict[tuple[str, str], list[int]]:
    out = {}
    for row in rows:
        key, currency, *amounts = row.values()
        out[(key, currency)] = [int(a) for a in amounts]
    return out


async def test_receivables_export_equals_the_report(reporting_service, channel, as_user):
    app, js = the_app(reporting_service), reporting_service.infrastructure.js
    today = datetime.now(UTC).date()
    deals = [
        Deal(customer_name(), "rita", "east", 300_000)
        .signed(at(today - timedelta(days=120)))
        .set_plan(
            at(today - timedelta(days=119)),
            [
                (today - timedelta(days=100), 100_000),
                (today - timedelta(days=10), 100_000),
                (today + timedelta(days=20), 100_000),
            ],
        ),
        Deal(customer_name(), "wes", "west", 50_000, currency="EUR")
        .signed(at(today - timedelta(days=60)))
        .set_plan(at(today - timedelta(days=59)), [(today - timedelta(days=45), 50_000)]),
    ]
    deals[0].pay(at(today - timedelta(days=5)), today - timedelta(days=5), [(1, 40_000)])
    events = [e for d in deals for e in d.events]
    await publish(js, events)
    await wait_applied(app, events)

    finance = fin_grpc.FinanceReportServiceStub(channel)
    for metadata, query in [
        (as_user("admin"), None),
        (as_user("sales_rep", "rita", "east"), None),
        (as_user("admin"), common_pb2.ReportQuery(team="west")),
    ]:
        request = fin.GetReceivablesReportRequest()
        if query is not None:
            request.query.CopyFrom(query)
        report = await finance.GetReceivablesReport(request, metadata=metadata)
        rows = await export_csv(channel, metadata, pb.REPORT_KIND_RECEIVABLES_AGING, query)
        assert csv_by_key(rows) == aging_by_key(report)
        assert rows, "the export holds rows"

    # Values computed from the script: rita 60 000 over 90 days, 100 000 1-30, 100 000 current.
    rita = csv_by_key(
        await export_csv(channel, as_user("sales_rep", "rita", "east"), pb.REPORT_KIND_RECEIVABLES_AGING)
    )
    assert set(rita) == {("rita", "CNY")}
    assert rita[("rita", "CNY")] == [100_000, 100_000, 0, 0, 60_000, 260_000]
    overdue = await export_csv(channel, as_user("admin"), pb.REPORT_KIND_OVERDUE_RECEIVABLES)
    assert [(r["currency_code"], int(r["outstanding_minor"])) for r in overdue] == [
        ("CNY", 60_000),
        ("EUR", 50_000),
        ("CNY", 100_000),
    ]


@pytest.mark.parametrize(
    ("role", "subject", "team", "query"),
    [
        ("sales_rep", "rita", "east", common_pb2.ReportQuery(owner="wes")),  # outside the own scope
        ("support_agent", "sam", "east", None),  # may export, but not read finance reports
    ],
)
async def test_export_outside_the_scope_is_denied(
    reporting_service, channel, as_user, role, subject, team, query
):
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await export_csv(channel, as_user(role, subject, team), pb.REPORT_KIND_RECEIVABLES_AGING, query)
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
