"""The contract service starts on both databases, serves health for every API, and stops cleanly."""

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_every_contract_api_reports_serving(channel, contract_service):
    health = health_pb2_grpc.HealthStub(channel)
    for service in contract_service.parts.service_names:
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
    assert set(contract_service.parts.service_names) == {
        "crm.contract.v1.ContractService",
        "crm.contract.v1.ApprovalService",
        "crm.contract.v1.PaymentService",
        "crm.contract.v1.InvoiceService",
        "crm.contract.v1.ReceivableService",
    }
