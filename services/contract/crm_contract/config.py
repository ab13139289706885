"""Contract service settings: environment variables prefixed CRM_CONTRACT_."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from crm_shared.settings import ServiceSettings


class ContractSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_CONTRACT_", extra="ignore")

    service_name: str = "contract"
    grpc_port: int = 50053
    database_url: str = "sqlite+aiosqlite:///./.crm/data/contract.db"
