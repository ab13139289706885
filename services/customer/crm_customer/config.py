"""Customer service settings: environment variables prefixed CRM_CUSTOMER_."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from crm_shared.settings import ServiceSettings


class CustomerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_CUSTOMER_", extra="ignore")

    service_name: str = "customer"
    grpc_port: int = 50051
    database_url: str = "sqlite+aiosqlite:///./.crm/data/customer.db"
    # pii_keys, blind_index_key and default_phone_region come from ServiceSettings.
