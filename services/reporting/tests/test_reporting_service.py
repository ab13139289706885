"""The reporting service starts on both databases, serves health for every API, and stops cleanly."""

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_every_reporting_api_reports_serving(channel, reporting_service):
    health = health_pb2_grpc.HealthStub(channel)
    for service in reporting_service.parts.service_names:
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
    assert set(reporting_service.parts.service_names) == {
        "crm.reporting.v1.CustomerInsightService",
        "crm.reporting.v1.AgendaService",
        "crm.reporting.v1.SalesReportService",
        "crm.reporting.v1.FinanceReportService",
        "crm.reporting.v1.ServiceReportService",
        "crm.reporting.v1.ReportExportService",
        "crm.reporting.v1.ProjectionService",
    }
