"""The sales servicers' base: crm_shared's ServicerBase with `_app` typed as SalesApp."""

from __future__ import annotations

from crm_sales.app import SalesApp
from crm_shared.grpc.servicer import ServicerBase


class SalesServicerBase(ServicerBase):
    _app: SalesApp
