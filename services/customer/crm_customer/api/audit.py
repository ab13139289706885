"""crm.customer.v1.AuditService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.customer.v1 import audit_service_pb2 as rpc
from crm.customer.v1 import audit_service_pb2_grpc as rpc_grpc
from crm_customer.adapters.audit_repository import AuditRecord
from crm_customer.adapters.published import timestamp
from crm_customer.app import CustomerApp
from crm_customer.service import audit
from crm_shared.principal import current_principal

SERVICE = "crm.customer.v1.AuditService"


def audit_event_to_pb(record: AuditRecord) -> rpc.AuditEvent:
    return rpc.AuditEvent(
        name=record.name,
        occur_time=timestamp(record.occurred_at),
        actor=record.actor,
        actor_team=record.actor_team,
        action=record.action,
        resource=record.resource,
        fields=record.fields,
        request_id=record.request_id,
    )


class AuditServicer(rpc_grpc.AuditServiceServicer):
    def __init__(self, app: CustomerApp) -> None:
        self._app = app

    async def ListAuditEvents(self, request, context) -> rpc.ListAuditEventsResponse:
        async with self._app.db.read_session() as session:
            page = await audit.list_audit_events(
                session,
                self._app.deps.policy,
                self._app.deps.page_tokens,
                current_principal(),
                page_size=request.page_size,
                page_token=request.page_token,
                filter_text=request.filter,
            )
        return rpc.ListAuditEventsResponse(
            audit_events=[audit_event_to_pb(r) for r in page.records], next_page_token=page.next_page_token
        )
