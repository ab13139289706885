"""CSV exports: dispatch a ReportKind to its area's `export_rows`, write RFC 4180 CSV in chunks.

The caller needs report_exports read AND the exported report's own read scope: the area's
`export_rows(session, deps, principal, kind, query_pb, group_by) -> (header, rows)` applies its
resource's scope itself (a rep's export holds only their own numbers, like the RPC).
"""

from __future__ import annotations

import csv
import importlib
import io
from collections.abc import Iterable, Iterator
from datetime import datetime
from enum import Enum

from crm.reporting.v1 import export_service_pb2 as rpc
from crm_shared.errors import InvalidArgument, Unavailable

CHUNK_BYTES = 64 * 1024
CONTENT_TYPE = "text/csv; charset=utf-8"

# ReportKind -> the area module providing export_rows for it.
AREAS: dict[int, str] = {
    rpc.REPORT_KIND_FUNNEL: "crm_reporting.service.sales_reports",
    rpc.REPORT_KIND_LEAD_CONVERSION: "crm_reporting.service.sales_reports",
    rpc.REPORT_KIND_SALES_PERFORMANCE: "crm_reporting.service.sales_reports",
    rpc.REPORT_KIND_FORECAST: "crm_reporting.service.sales_reports",
    rpc.REPORT_KIND_RECEIVABLES_AGING: "crm_reporting.service.finance_reports",
    rpc.REPORT_KIND_OVERDUE_RECEIVABLES: "crm_reporting.service.finance_reports",
    rpc.REPORT_KIND_SERVICE: "crm_reporting.service.service_reports",
    rpc.REPORT_KIND_CUSTOMER_SCORES: "crm_reporting.service.analytics",
}


def area_module(kind: int):
    module_name = AREAS.get(kind)
    if module_name is None:
        raise InvalidArgument.for_field("kind", "must be a defined report kind")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise Unavailable(f"report kind {rpc.ReportKind.Name(kind)} cannot be exported yet") from exc
    if not hasattr(module, "export_rows"):
        raise Unavailable(f"report kind {rpc.ReportKind.Name(kind)} cannot be exported yet")
    return module


async def export_table(
    session, deps, principal, kind: int, query_pb, group_by: str
) -> tuple[list[str], list[list]]:
    deps.policy.grant(principal, "report_exports", "read")
    module = area_module(kind)
    header, rows = await module.export_rows(session, deps, principal, kind, query_pb, group_by)
    return list(header), [list(row) for row in rows]


def cell(value) -> str:
    """CSV text of one value: times in ISO 8601 UTC, enums by name, floats as written, None empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Enum):
        return value.name
    return str(value)


def csv_chunks(header: list[str], rows: Iterable[list], *, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """UTF-8 CSV (header first, CRLF line ends) cut into chunks of about `chunk_bytes`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([cell(v) for v in row])
        if buffer.tell() >= chunk_bytes:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode("utf-8")
