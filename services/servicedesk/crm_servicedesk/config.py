"""Servicedesk settings: environment variables prefixed CRM_SERVICEDESK_."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from crm_shared.settings import ServiceSettings


class ServicedeskSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_SERVICEDESK_", extra="ignore")

    service_name: str = "servicedesk"
    grpc_port: int = 50054
    database_url: str = "sqlite+aiosqlite:///./.crm/data/servicedesk.db"
    # The customer service (ticket creation takes a customer snapshot from it).
    customer_target: str = "127.0.0.1:50051"
    # Deadline of the snapshot call while a ticket is being created: past it, the ticket is
    # created anyway and the snapshot is fetched later by a durable timer.
    customer_snapshot_timeout_seconds: float = 1.0
    # Retries of a snapshot that could not be taken at creation: 1 min, 2, 4… capped here.
    snapshot_retry_max_seconds: float = 3600.0
    # A file holding the servicedesk's service identity (a JWT with role `service`) for calls made
    # without a caller (snapshot retries); re-read when it changes. Empty: retries wait for one.
    service_token_file: str = ""
    # RESOLVED tickets close by themselves this many days after resolution (0: never).
    auto_close_days: int = 7
