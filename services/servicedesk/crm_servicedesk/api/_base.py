"""The servicedesk servicers' base: crm_shared's ServicerBase with `_app` typed as ServicedeskApp."""

from __future__ import annotations

from crm_servicedesk.app import ServicedeskApp
from crm_shared.grpc.servicer import ServicerBase


class ServicedeskServicerBase(ServicerBase):
    _app: ServicedeskApp
