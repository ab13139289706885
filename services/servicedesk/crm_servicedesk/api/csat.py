"""crm.servicedesk.v1.CsatService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.servicedesk.v1 import csat_service_pb2_grpc as rpc_grpc
from crm_servicedesk.api._base import ServicedeskServicerBase


class CsatServicer(ServicedeskServicerBase, rpc_grpc.CsatServiceServicer):
    pass
