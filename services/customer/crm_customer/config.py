"""Customer service settings: environment variables prefixed CRM_CUSTOMER_."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from crm_shared.settings import ServiceSettings


class CustomerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_CUSTOMER_", extra="ignore")

    service_name: str = "customer"
    grpc_port: int = 50051
    database_url: str = "sqlite+aiosqlite:///./.crm/data/customer.db"
    # AES-GCM key ring for personal data, "kid:base64key[,kid:base64key…]" (first = active).
    pii_keys: SecretStr = Field(default=SecretStr(""))
    # HMAC key (base64, 32 bytes) for blind indexes of emails, phones and tax ids.
    blind_index_key: SecretStr = Field(default=SecretStr(""))
    # Region assumed for phone numbers written without a country code.
    default_phone_region: str = "CN"
