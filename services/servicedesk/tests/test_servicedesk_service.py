"""The servicedesk starts on both databases, serves health for every API, and stops cleanly."""

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_every_servicedesk_api_reports_serving(channel, servicedesk_service):
    health = health_pb2_grpc.HealthStub(channel)
    for service in servicedesk_service.parts.service_names:
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
    assert set(servicedesk_service.parts.service_names) == {
        "crm.servicedesk.v1.TicketService",
        "crm.servicedesk.v1.SlaService",
        "crm.servicedesk.v1.SupportTeamService",
        "crm.servicedesk.v1.KnowledgeService",
        "crm.servicedesk.v1.CsatService",
    }
