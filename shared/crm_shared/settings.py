"""Settings every service shares (pydantic-settings).

Each service subclasses ServiceSettings with its own env prefix, e.g.
CRM_CUSTOMER_DATABASE_URL. Secrets have no usable defaults: a service refuses to
start without keys instead of running with a well-known one (`make run`
generates dev keys into its data directory).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_", extra="ignore")

    service_name: str = "service"
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    # Prometheus /metrics; 0 disables the endpoint (tests).
    metrics_port: int = 0
    # sqlite+aiosqlite:///path/to/file.db or postgresql+asyncpg://user@host/db
    database_url: str = "sqlite+aiosqlite:///./.crm/data/service.db"
    database_pool_size: int = 10
    # Apply alembic migrations at start (dev); in Kubernetes a Job does it and this is false.
    migrate_on_start: bool = True
    nats_url: str = "nats://127.0.0.1:4222"
    # JetStream replicas of the service's own event stream (applied at every start): 1 on a single
    # server, 3 on a 3-node cluster so events survive a node.
    stream_replicas: int = Field(default=1, ge=1, le=5)
    # JWT verification: issuer and audience must match; keys from a PEM public key or a JWKS file.
    jwt_issuer: str = "https://auth.crm.local"
    jwt_audience: str = "crm"
    jwt_public_key_file: Path | None = None
    jwt_jwks_file: Path | None = None
    # Secret that signs page tokens so clients cannot forge or read keyset positions.
    page_token_secret: SecretStr = Field(default=SecretStr(""))
    # Personal data (services that hold any): AES-GCM key ring "kid:base64key[,kid:base64key…]"
    # (first = active) wrapping per-subject data keys, and the HMAC key of blind indexes.
    pii_keys: SecretStr = Field(default=SecretStr(""))
    blind_index_key: SecretStr = Field(default=SecretStr(""))
    # Region assumed for phone numbers written without a country code.
    default_phone_region: str = "CN"
    # Seconds in-flight RPCs get to finish after SIGTERM before being cancelled.
    shutdown_grace_seconds: float = 15.0
    # Path of the access policy YAML; default is the one shipped in crm_shared.
    access_policy_file: Path | None = None
    log_level: str = "INFO"
    log_json: bool = True
