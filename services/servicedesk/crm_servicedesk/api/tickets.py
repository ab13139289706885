"""crm.servicedesk.v1.TicketService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.servicedesk.v1 import ticket_service_pb2_grpc as rpc_grpc
from crm_servicedesk.api._base import ServicedeskServicerBase


class TicketServicer(ServicedeskServicerBase, rpc_grpc.TicketServiceServicer):
    pass
