"""Local RS256 key material and token minting for development and tests.

Production tokens come from the organisation's OIDC issuer; this module stands
in for it: one RSA key pair in a directory (private.pem 0600, public.pem and
jwks.json carrying a `kid`), reused on every run so tokens minted yesterday
still verify today. The claims minted here (sub, roles, team, iss, aud, iat,
exp) are exactly the ones the services' verifier and Envoy's jwt_authn expect.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

PRIVATE_KEY_FILE = "private.pem"
PUBLIC_KEY_FILE = "public.pem"
JWKS_FILE = "jwks.json"


@dataclass(frozen=True)
class DevKeys:
    directory: Path
    kid: str
    private_key_pem: bytes
    public_key_pem: bytes

    @property
    def private_key_path(self) -> Path:
        return self.directory / PRIVATE_KEY_FILE

    @property
    def public_key_path(self) -> Path:
        return self.directory / PUBLIC_KEY_FILE

    @property
    def jwks_path(self) -> Path:
        return self.directory / JWKS_FILE


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _key_id(public_der: bytes) -> str:
    # Derived from the key itself, so a regenerated key never reuses an old kid.
    return base64.urlsafe_b64encode(hashlib.sha256(public_der).digest()[:12]).rstrip(b"=").decode()


def jwks_for(public_key_pem: bytes) -> tuple[str, dict]:
    public_key = serialization.load_pem_public_key(public_key_pem)
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise ValueError("dev keys must be RSA")
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    kid = _key_id(der)
    numbers = public_key.public_numbers()
    jwk = {
        "kty": "RSA",
        "kid": kid,
        "use": "sig",
        "alg": "RS256",
        "n": _b64url_uint(numbers.n),
        "e": _b64url_uint(numbers.e),
    }
    return kid, {"keys": [jwk]}


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def generate_dev_keys(directory: str | os.PathLike[str]) -> DevKeys:
    """Create (or reuse) an RSA-2048 key pair and its JWKS in `directory`."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    private_path = folder / PRIVATE_KEY_FILE
    if private_path.exists():
        private_pem = private_path.read_bytes()
        private_key = serialization.load_pem_private_key(private_pem, password=None)
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise ValueError(f"{private_path} is not an RSA private key")
    else:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_pem = private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_private(private_path, private_pem)
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    kid, jwks = jwks_for(public_pem)
    # The public files are derived: rewrite them when missing or stale (cheap, keeps them consistent).
    public_path = folder / PUBLIC_KEY_FILE
    if not public_path.exists() or public_path.read_bytes() != public_pem:
        public_path.write_bytes(public_pem)
    jwks_text = json.dumps(jwks, indent=2) + "\n"
    jwks_path = folder / JWKS_FILE
    if not jwks_path.exists() or jwks_path.read_text() != jwks_text:
        jwks_path.write_text(jwks_text)
    return DevKeys(directory=folder, kid=kid, private_key_pem=private_pem, public_key_pem=public_pem)


def mint_token(
    keys: DevKeys,
    *,
    subject: str,
    roles: list[str] | tuple[str, ...],
    team: str,
    issuer: str,
    audience: str,
    ttl_seconds: int = 3600,
    now: float | None = None,
) -> str:
    """An RS256 JWT with header kid and claims sub, roles (list), team, iss, aud, iat, exp."""
    issued_at = int(time.time() if now is None else now)
    claims = {
        "sub": subject,
        "roles": list(roles),
        "team": team,
        "iss": issuer,
        "aud": audience,
        "iat": issued_at,
        "exp": issued_at + int(ttl_seconds),
    }
    return jwt.encode(claims, keys.private_key_pem, algorithm="RS256", headers={"kid": keys.kid})
