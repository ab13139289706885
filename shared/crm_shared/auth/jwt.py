"""Verifying bearer JWTs (RS256 / ES256) into a Principal.

Every service verifies the token again even though Envoy already did: a service
reached directly must not trust a header a client could set. Keys are parsed
once at construction; each token is verified from scratch (an RSA verify costs
tens of microseconds, so caching per token would buy little and risk serving a
revoked-by-expiry token).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.api_jws import PyJWS
from jwt.utils import base64url_decode, base64url_encode

from crm_shared.errors import Unauthenticated
from crm_shared.principal import Principal

# Asymmetric algorithms only: "none" and HS* would let anyone holding the public key forge tokens.
_ALGORITHM_FOR_KEY_TYPE: dict[type, str] = {
    rsa.RSAPublicKey: "RS256",
    ec.EllipticCurvePublicKey: "ES256",
}
ACCEPTED_ALGORITHMS = frozenset(_ALGORITHM_FOR_KEY_TYPE.values())
LEEWAY_SECONDS = 30
VERIFIED_CACHE_SIZE = 10_000
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]
_BASE64URL = re.compile(rb"[A-Za-z0-9_-]*")


class _FastSegmentJWS(PyJWS):
    """PyJWS with its base64url alphabet check done by a regex instead of a per-byte Python loop.

    PyJWT 2.15 checks every character of every segment in a generator, which
    costs more than the RSA verify itself (~200 µs per RS256 token here). Same
    rules as PyJWS._decode_base64url_segment (GHSA-hxm8-2xgr-2p9m), at C speed.
    """

    @staticmethod
    def _decode_base64url_segment(segment: bytes, name: str) -> bytes:
        stripped = segment.rstrip(b"=")
        padding = len(segment) - len(stripped)
        if (
            padding > 2
            or (padding and len(segment) % 4 != 0)
            or len(stripped) % 4 == 1
            or not _BASE64URL.fullmatch(stripped)
        ):
            raise jwt.DecodeError(f"Invalid {name} padding")
        try:
            decoded = base64url_decode(stripped)
        except (TypeError, binascii.Error) as error:
            raise jwt.DecodeError(f"Invalid {name} padding") from error
        if base64url_encode(decoded) != stripped:
            raise jwt.DecodeError(f"Invalid {name} padding")
        return decoded


def _fast_pyjwt() -> jwt.PyJWT:
    decoder = jwt.PyJWT()
    decoder._jws = _FastSegmentJWS(options=decoder._get_sig_options())
    return decoder


def _unverified_header(token: str) -> dict[str, Any]:
    """Only to pick the key: the full, strict parse happens in decode, which rejects anything odd."""
    segment = token.partition(".")[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error):
        raise Unauthenticated("token is not a JWT", reason="TOKEN_MALFORMED") from None
    if not isinstance(header, dict) or token.count(".") != 2:
        raise Unauthenticated("token is not a JWT", reason="TOKEN_MALFORMED")
    return header


@dataclass(frozen=True)
class _VerificationKey:
    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    algorithm: str


def _verification_key(public_key: Any) -> _VerificationKey:
    for key_type, algorithm in _ALGORITHM_FOR_KEY_TYPE.items():
        if isinstance(public_key, key_type):
            if isinstance(public_key, ec.EllipticCurvePublicKey) and public_key.curve.name != "secp256r1":
                raise ValueError("ES256 needs a P-256 key")
            return _VerificationKey(public_key, algorithm)
    raise ValueError(f"unsupported public key type {type(public_key).__name__}: use RSA or EC P-256")


class JwtVerifier:
    """Checks signature, issuer, audience and lifetime; returns who is calling."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        public_keys: Mapping[str | None, Any],
    ) -> None:
        """public_keys maps key id (None for a key without one) to a cryptography public key."""
        if not public_keys:
            raise ValueError("JwtVerifier needs at least one public key")
        self.issuer = issuer
        self.audience = audience
        self._keys = {kid: _verification_key(key) for kid, key in public_keys.items()}
        # A token without `kid` is only unambiguous when there is exactly one key.
        self._only_key = next(iter(self._keys.values())) if len(self._keys) == 1 else None
        self._decoder = _fast_pyjwt()
        # token -> (principal, exp): a client reuses its token for many calls, and an RS256 check
        # costs ~150 µs of CPU. Keyed by the whole token, signature included, so only a token that
        # verified before can hit; expiry is re-checked on every hit.
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    @classmethod
    def from_pem_file(cls, path: str | Path, *, issuer: str, audience: str) -> JwtVerifier:
        public_key = serialization.load_pem_public_key(Path(path).read_bytes())
        return cls(issuer, audience, {None: public_key})

    @classmethod
    def from_jwks_file(cls, path: str | Path, *, issuer: str, audience: str) -> JwtVerifier:
        document = json.loads(Path(path).read_text())
        keys: dict[str | None, Any] = {}
        for jwk in document.get("keys", []):
            if jwk.get("use", "sig") != "sig" or jwk.get("kty") not in ("RSA", "EC"):
                continue
            keys[jwk.get("kid")] = jwt.PyJWK.from_dict(jwk).key
        if not keys:
            raise ValueError(f"{path}: no RSA or EC signing key in the JWKS")
        return cls(issuer, audience, keys)

    def verify(self, token: str) -> Principal:
        if not token:
            raise Unauthenticated("no bearer token", reason="TOKEN_MISSING")
        cached = self._verified.get(token)
        if cached is not None:
            principal, expires = cached
            if time.time() <= expires + LEEWAY_SECONDS:
                self._verified.move_to_end(token)
                return principal
            del self._verified[token]
            raise Unauthenticated("token has expired", reason="TOKEN_EXPIRED")
        principal, expires = self._verify_uncached(token)
        self._verified[token] = (principal, expires)
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return principal

    def _verify_uncached(self, token: str) -> tuple[Principal, float]:
        key = self._key_for(token)
        try:
            claims = self._decoder.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token has expired", reason="TOKEN_EXPIRED") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("token signature is invalid", reason="TOKEN_BAD_SIGNATURE") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("token issuer is not trusted", reason="TOKEN_WRONG_ISSUER") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated(
                "token is not meant for this audience", reason="TOKEN_WRONG_AUDIENCE"
            ) from None
        except jwt.exceptions.InvalidSubjectError:
            raise Unauthenticated("token subject is invalid", reason="TOKEN_NO_SUBJECT") from None
        except jwt.MissingRequiredClaimError as error:
            raise _missing_claim(error.claim) from None
        except jwt.InvalidTokenError as error:
            # Not-yet-valid iat/nbf, undecodable payload, wrong claim types.
            raise Unauthenticated(f"token is malformed: {error}", reason="TOKEN_MALFORMED") from None
        return _principal_from(claims, token), float(claims["exp"])

    def _key_for(self, token: str) -> _VerificationKey:
        header = _unverified_header(token)
        algorithm = header.get("alg")
        if algorithm not in ACCEPTED_ALGORITHMS:
            raise Unauthenticated(
                f"token algorithm {algorithm!r} is not accepted", reason="TOKEN_BAD_SIGNATURE"
            )
        kid = header.get("kid")
        key = self._keys.get(kid) if kid is not None else None
        if key is None:
            key = self._only_key
        if key is None:
            raise Unauthenticated("token was signed by an unknown key", reason="TOKEN_BAD_SIGNATURE")
        if key.algorithm != algorithm:
            raise Unauthenticated("token algorithm does not match the key", reason="TOKEN_BAD_SIGNATURE")
        return key


def _missing_claim(claim: str) -> Unauthenticated:
    reason = {
        "sub": "TOKEN_NO_SUBJECT",
        "iss": "TOKEN_WRONG_ISSUER",
        "aud": "TOKEN_WRONG_AUDIENCE",
    }.get(claim, "TOKEN_MALFORMED")
    return Unauthenticated(f"token has no {claim!r} claim", reason=reason)


def _principal_from(claims: dict[str, Any], token: str) -> Principal:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise Unauthenticated("token has no subject", reason="TOKEN_NO_SUBJECT")
    roles = claims.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise Unauthenticated("token claim 'roles' must be a list of strings", reason="TOKEN_MALFORMED")
    team = claims.get("team", "")
    if not isinstance(team, str):
        raise Unauthenticated("token claim 'team' must be a string", reason="TOKEN_MALFORMED")
    return Principal(subject=subject, roles=frozenset(roles), team=team, token=token)
