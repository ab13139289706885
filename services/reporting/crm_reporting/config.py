"""Reporting service settings: environment variables prefixed CRM_REPORTING_."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from crm_shared.settings import ServiceSettings


class ReportingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_REPORTING_", extra="ignore")

    service_name: str = "reporting"
    grpc_port: int = 50055
    database_url: str = "sqlite+aiosqlite:///./.crm/data/reporting.db"
