"""JwtVerifier against tokens minted independently with PyJWT."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from crm_shared.auth.jwt import JwtVerifier
from crm_shared.errors import Unauthenticated
from crm_shared.testing.fixtures_auth import generate_rsa_private_pem


def rejection_reason(verifier: JwtVerifier, token: str) -> str:
    with pytest.raises(Unauthenticated) as raised:
        verifier.verify(token)
    return raised.value.reason


def test_a_valid_token_becomes_a_principal_carrying_the_token(verifier, token_factory):
    token = token_factory(subject="alice", roles=("admin", "sales_manager"), team="east")
    principal = verifier.verify(token)
    assert principal.subject == "alice"
    assert principal.roles == frozenset({"admin", "sales_manager"})
    assert principal.team == "east"
    assert principal.token == token
    assert token not in repr(principal)


def test_a_pem_public_key_verifies_too(jwt_keys, token_factory):
    pem_verifier = JwtVerifier.from_pem_file(
        jwt_keys.public_pem_path, issuer=jwt_keys.issuer, audience=jwt_keys.audience
    )
    assert pem_verifier.verify(token_factory(subject="bob")).subject == "bob"


def test_expiry_allows_thirty_seconds_of_clock_skew(verifier, token_factory):
    assert verifier.verify(token_factory(ttl=-20)).subject == "alice"
    assert rejection_reason(verifier, token_factory(ttl=-40)) == "TOKEN_EXPIRED"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"iss": "https://other.example"}, "TOKEN_WRONG_ISSUER"),
        ({"iss": None}, "TOKEN_WRONG_ISSUER"),
        ({"aud": "billing"}, "TOKEN_WRONG_AUDIENCE"),
        ({"aud": None}, "TOKEN_WRONG_AUDIENCE"),
        ({"subject": None}, "TOKEN_NO_SUBJECT"),
        ({"subject": ""}, "TOKEN_NO_SUBJECT"),
        ({"exp": None}, "TOKEN_MALFORMED"),
        ({"roles": "admin"}, "TOKEN_MALFORMED"),
        ({"team": 7}, "TOKEN_MALFORMED"),
        ({"iat": int(time.time()) + 3600}, "TOKEN_MALFORMED"),
    ],
)
def test_claims_that_do_not_check_out_are_rejected(verifier, token_factory, overrides, reason):
    assert rejection_reason(verifier, token_factory(**overrides)) == reason


def test_empty_and_garbage_tokens(verifier):
    assert rejection_reason(verifier, "") == "TOKEN_MISSING"
    assert rejection_reason(verifier, "garbage") == "TOKEN_MALFORMED"
    assert rejection_reason(verifier, "a.b.c") == "TOKEN_MALFORMED"


def test_a_token_signed_with_another_key_has_a_bad_signature(verifier, token_factory):
    assert rejection_reason(verifier, token_factory(signing_key=generate_rsa_private_pem())) == (
        "TOKEN_BAD_SIGNATURE"
    )


def test_a_tampered_payload_has_a_bad_signature(verifier, token_factory):
    header, _, signature = token_factory(subject="alice").split(".")
    forged_payload = jwt.utils.base64url_encode(
        json.dumps({"sub": "mallory", "iss": verifier.issuer, "aud": "crm", "exp": 2**31, "iat": 0}).encode()
    ).decode()
    assert rejection_reason(verifier, f"{header}.{forged_payload}.{signature}") == "TOKEN_BAD_SIGNATURE"


def test_unsigned_and_symmetric_tokens_are_refused(verifier, jwt_keys):
    claims = {"sub": "mallory", "iss": jwt_keys.issuer, "aud": jwt_keys.audience, "exp": 2**31, "iat": 0}
    unsigned = jwt.encode(claims, None, algorithm="none")
    assert rejection_reason(verifier, unsigned) == "TOKEN_BAD_SIGNATURE"
    # The classic confusion attack: HMAC keyed with the (public) RSA key.
    # (signed by hand: PyJWT itself refuses to use a PEM public key as an HMAC secret).
    hmac_token = _hs256(claims, jwt_keys.public_pem_path.read_bytes())
    assert rejection_reason(verifier, hmac_token) == "TOKEN_BAD_SIGNATURE"


def _hs256(claims: dict, secret: bytes) -> str:
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = (
        f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims).encode())}"
    )
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def test_jwks_keys_are_chosen_by_kid_and_es256_is_accepted(tmp_path, jwt_keys, token_factory):
    ec_private = ec.generate_private_key(ec.SECP256R1())
    ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_private.public_key()))
    ec_jwk.update(kid="ec-key", use="sig")
    rsa_jwks = json.loads(jwt_keys.jwks_path.read_text())
    jwks_path = tmp_path / "jwks.json"
    jwks_path.write_text(json.dumps({"keys": [*rsa_jwks["keys"], ec_jwk]}))
    verifier = JwtVerifier.from_jwks_file(jwks_path, issuer=jwt_keys.issuer, audience=jwt_keys.audience)

    ec_pem = ec_private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    ec_token = token_factory(subject="svc", signing_key=ec_pem, algorithm="ES256", headers={"kid": "ec-key"})
    assert verifier.verify(ec_token).subject == "svc"
    assert verifier.verify(token_factory(subject="rsa-user")).subject == "rsa-user"
    unknown_kid = token_factory(headers={"kid": "retired-key"})
    assert rejection_reason(verifier, unknown_kid) == "TOKEN_BAD_SIGNATURE"
    # An RSA-signed token claiming the EC key's kid must not be checked with the wrong algorithm.
    assert rejection_reason(verifier, token_factory(headers={"kid": "ec-key"})) == "TOKEN_BAD_SIGNATURE"


def test_a_jwks_without_signing_keys_is_refused(tmp_path):
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}))
    with pytest.raises(ValueError, match="no RSA or EC signing key"):
        JwtVerifier.from_jwks_file(path, issuer="i", audience="a")


SEGMENTS = (
    st.binary(max_size=64).map(jwt.utils.base64url_encode)
    | st.tuples(st.binary(max_size=16), st.integers(0, 3)).map(
        lambda drawn: jwt.utils.base64url_encode(drawn[0]) + b"=" * drawn[1]
    )
    | st.text("ABYZabyz0189-_=!+/ .", max_size=24).map(str.encode)
)


@given(SEGMENTS)
def test_the_fast_segment_decoder_accepts_exactly_what_pyjwt_accepts(segment):
    from jwt.api_jws import PyJWS

    from crm_shared.auth.jwt import _FastSegmentJWS

    def outcome(decode):
        try:
            return decode(segment, "payload")
        except jwt.DecodeError:
            return "rejected"

    assert outcome(_FastSegmentJWS._decode_base64url_segment) == outcome(PyJWS._decode_base64url_segment)


def test_a_cached_token_still_expires(jwt_keys, token_factory, monkeypatch):
    """Verified tokens are cached (one RS256 check per token), but expiry is checked on every call."""
    from crm_shared.auth import jwt as jwt_module

    verifier = JwtVerifier.from_jwks_file(
        jwt_keys.jwks_path, issuer=jwt_keys.issuer, audience=jwt_keys.audience
    )
    token = token_factory(ttl=60)
    assert verifier.verify(token).subject == "alice"
    assert verifier.verify(token).subject == "alice"  # served from the cache
    real_time = jwt_module.time.time
    monkeypatch.setattr(jwt_module.time, "time", lambda: real_time() + 60 + jwt_module.LEEWAY_SECONDS + 1)
    with pytest.raises(Unauthenticated) as caught:
        verifier.verify(token)
    assert caught.value.reason == "TOKEN_EXPIRED"


def test_a_tampered_copy_of_a_cached_token_is_not_served_from_the_cache(verifier, token_factory):
    token = token_factory()
    verifier.verify(token)
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[:-4]}AAAA"
    with pytest.raises(Unauthenticated):
        verifier.verify(forged)
