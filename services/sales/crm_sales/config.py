"""Sales service settings: environment variables prefixed CRM_SALES_."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from crm_shared.settings import ServiceSettings


class SalesSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_SALES_", extra="ignore")

    service_name: str = "sales"
    grpc_port: int = 50052
    database_url: str = "sqlite+aiosqlite:///./.crm/data/sales.db"
    # The customer service (ConvertLead creates or links customers there).
    customer_target: str = "127.0.0.1:50051"
    # Deadline of calls to other services, seconds.
    downstream_timeout_seconds: float = 5.0
