"""The sales service starts on both databases, serves health and reflection, and stops cleanly."""

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_every_sales_api_reports_serving(channel, sales_service):
    health = health_pb2_grpc.HealthStub(channel)
    for service in sales_service.parts.service_names:
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
    assert "crm.sales.v1.LeadService" in sales_service.parts.service_names
