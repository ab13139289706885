"""crm.reporting.v1.ReportExportService over gRPC: streamed CSV (google.api.HttpBody chunks)."""

from __future__ import annotations

from google.api import httpbody_pb2

from crm.reporting.v1 import export_service_pb2 as rpc
from crm.reporting.v1 import export_service_pb2_grpc as rpc_grpc
from crm_reporting.api._base import ReportingServicerBase
from crm_reporting.service.exports import CONTENT_TYPE, csv_chunks, export_table
from crm_shared.principal import current_principal


class ReportExportServicer(ReportingServicerBase, rpc_grpc.ReportExportServiceServicer):
    async def ExportReport(self, request: rpc.ExportReportRequest, context):
        principal = current_principal()
        query = request.query if request.HasField("query") else None
        async with self._app.db.read_session() as session:
            header, rows = await export_table(
                session, self._app, principal, request.kind, query, request.group_by
            )
        for chunk in csv_chunks(header, rows):
            yield httpbody_pb2.HttpBody(content_type=CONTENT_TYPE, data=chunk)
