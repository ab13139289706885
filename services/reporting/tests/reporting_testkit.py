"""Settings of a reporting service under test (imported by conftest and by tests that start their own)."""

from __future__ import annotations

from crm_reporting.config import ReportingSettings


def reporting_settings(database_url: str, nats_url: str, jwt_keys, **overrides) -> ReportingSettings:
    values = dict(
        grpc_port=0,
        database_url=database_url,
        nats_url=nats_url,
        jwt_jwks_file=jwt_keys.jwks_path,
        jwt_issuer=jwt_keys.issuer,
        jwt_audience=jwt_keys.audience,
        page_token_secret="test-page-secret",
        shutdown_grace_seconds=2,
    )
    values.update(overrides)
    return ReportingSettings(**values)
