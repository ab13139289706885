"""Settings for a customer service under test (imported by conftest and by tests that start
their own service, e.g. with a ManualClock or a second key ring)."""

from __future__ import annotations

from crm_customer.config import CustomerSettings
from crm_shared.pii.crypto import generate_key


def customer_settings(database_url: str, nats_url: str, jwt_keys, **overrides) -> CustomerSettings:
    values = dict(
        grpc_port=0,
        database_url=database_url,
        nats_url=nats_url,
        jwt_jwks_file=jwt_keys.jwks_path,
        jwt_issuer=jwt_keys.issuer,
        jwt_audience=jwt_keys.audience,
        pii_keys=f"k1:{generate_key()}",
        blind_index_key=generate_key(),
        page_token_secret="test-page-secret",
        shutdown_grace_seconds=2,
    )
    values.update(overrides)
    return CustomerSettings(**values)
