"""Fixtures: a real RSA key pair, tokens signed with it, and a verifier that trusts it.

Tokens are signed with PyJWT directly (not crm_shared.auth.dev_keys) so the
verifier is tested against an independent minting path.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from crm_shared.auth.jwt import JwtVerifier

__all__ = ["JwtTestKeys", "generate_rsa_private_pem", "jwt_keys", "token_factory", "verifier"]

TEST_ISSUER = "https://auth.crm.test"
TEST_AUDIENCE = "crm"


@dataclass(frozen=True)
class JwtTestKeys:
    private_pem: bytes
    public_pem_path: Path
    jwks_path: Path
    kid: str
    issuer: str = TEST_ISSUER
    audience: str = TEST_AUDIENCE


def generate_rsa_private_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="session")
def jwt_keys(tmp_path_factory: pytest.TempPathFactory) -> JwtTestKeys:
    directory = tmp_path_factory.mktemp("jwt-keys")
    private_pem = generate_rsa_private_pem()
    public_key = serialization.load_pem_private_key(private_pem, password=None).public_key()
    public_pem_path = directory / "public.pem"
    public_pem_path.write_bytes(
        public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    kid = "test-key-1"
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public_key))
    jwk.update(kid=kid, use="sig", alg="RS256")
    jwks_path = directory / "jwks.json"
    jwks_path.write_text(json.dumps({"keys": [jwk]}))
    return JwtTestKeys(private_pem=private_pem, public_pem_path=public_pem_path, jwks_path=jwks_path, kid=kid)


TokenFactory = Callable[..., str]


@pytest.fixture(scope="session")
def token_factory(jwt_keys: JwtTestKeys) -> TokenFactory:
    """token_factory(subject="alice", roles=("admin",), team="east", ttl=300, **claim_overrides).

    A claim override of None removes that claim; `signing_key` (a private PEM) and
    `headers` let a test forge tokens the verifier must reject.
    """

    def make_token(
        subject: str | None = "alice",
        roles: tuple[str, ...] | list[str] | str = ("admin",),
        team: str = "east",
        ttl: int = 300,
        *,
        signing_key: bytes | None = None,
        algorithm: str = "RS256",
        headers: dict[str, Any] | None = None,
        **claim_overrides: Any,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": subject,
            # A bare string stays one (a malformed claim tests can send on purpose).
            "roles": roles if isinstance(roles, str) else list(roles),
            "team": team,
            "iss": jwt_keys.issuer,
            "aud": jwt_keys.audience,
            "iat": now,
            "exp": now + ttl,
        }
        claims.update(claim_overrides)
        claims = {name: value for name, value in claims.items() if value is not None}
        return jwt.encode(
            claims,
            signing_key if signing_key is not None else jwt_keys.private_pem,
            algorithm=algorithm,
            headers={"kid": jwt_keys.kid, **(headers or {})},
        )

    return make_token


@pytest.fixture(scope="session")
def verifier(jwt_keys: JwtTestKeys) -> JwtVerifier:
    return JwtVerifier.from_jwks_file(jwt_keys.jwks_path, issuer=jwt_keys.issuer, audience=jwt_keys.audience)
