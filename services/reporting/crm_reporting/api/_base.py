"""The reporting servicers' base: crm_shared's ServicerBase with `_app` typed as ReportingApp."""

from __future__ import annotations

from crm_reporting.app import ReportingApp
from crm_shared.grpc.servicer import ServicerBase


class ReportingServicerBase(ServicerBase):
    _app: ReportingApp
