"""crm.servicedesk.v1.KnowledgeService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.servicedesk.v1 import knowledge_service_pb2_grpc as rpc_grpc
from crm_servicedesk.api._base import ServicedeskServicerBase


class KnowledgeServicer(ServicedeskServicerBase, rpc_grpc.KnowledgeServiceServicer):
    pass
