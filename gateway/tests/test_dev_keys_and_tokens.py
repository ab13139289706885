"""Dev key material, the token CLI and the grpc_call helper."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from crm_shared.auth.dev_keys import generate_dev_keys, mint_token

REPO_ROOT = Path(__file__).resolve().parents[2]


def _verify(
    token: str, jwks_path: Path, *, issuer: str = "https://auth.crm.local", audience: str = "crm"
) -> dict:
    jwks = jwt.PyJWKSet.from_dict(json.loads(jwks_path.read_text()))
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in jwks.keys if k.key_id == kid)
    return jwt.decode(token, key.key, algorithms=["RS256"], issuer=issuer, audience=audience)


def test_keys_are_created_private_and_reused(tmp_path):
    first = generate_dev_keys(tmp_path / "keys")
    assert first.private_key_path.stat().st_mode & 0o777 == 0o600
    jwks = json.loads(first.jwks_path.read_text())
    assert jwks["keys"][0]["kid"] == first.kid
    assert jwks["keys"][0]["alg"] == "RS256"
    again = generate_dev_keys(tmp_path / "keys")
    assert again.kid == first.kid
    assert again.private_key_pem == first.private_key_pem


def test_a_deleted_jwks_is_rebuilt_from_the_private_key(tmp_path):
    keys = generate_dev_keys(tmp_path)
    keys.jwks_path.unlink()
    assert generate_dev_keys(tmp_path).kid == keys.kid
    assert json.loads(keys.jwks_path.read_text())["keys"][0]["kid"] == keys.kid


def test_minted_token_has_exactly_the_agreed_claims(tmp_path):
    keys = generate_dev_keys(tmp_path)
    token = mint_token(
        keys,
        subject="alice",
        roles=["admin", "sales_manager"],
        team="east",
        issuer="https://auth.crm.local",
        audience="crm",
        ttl_seconds=120,
    )
    assert jwt.get_unverified_header(token)["kid"] == keys.kid
    claims = _verify(token, keys.jwks_path)
    assert set(claims) == {"sub", "roles", "team", "iss", "aud", "iat", "exp"}
    assert claims["sub"] == "alice"
    assert claims["roles"] == ["admin", "sales_manager"]
    assert claims["team"] == "east"
    assert claims["exp"] - claims["iat"] == 120


def test_expired_token_fails_verification(tmp_path):
    keys = generate_dev_keys(tmp_path)
    token = mint_token(
        keys,
        subject="a",
        roles=[],
        team="",
        issuer="https://auth.crm.local",
        audience="crm",
        ttl_seconds=10,
        now=1_000_000,
    )
    with pytest.raises(jwt.ExpiredSignatureError):
        _verify(token, keys.jwks_path)


def test_tokens_cli_mints_a_verifiable_token(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "crm_gateway.tokens",
            "mint",
            "--role",
            "sales_rep",
            "--subject",
            "bob",
            "--team",
            "west",
            "--ttl",
            "60",
            "--keys-dir",
            str(tmp_path / "k"),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
    )
    claims = _verify(result.stdout.strip(), tmp_path / "k" / "jwks.json")
    assert (claims["sub"], claims["roles"], claims["team"]) == ("bob", ["sales_rep"], "west")


def test_tokens_cli_keys_command_and_data_dir(tmp_path):
    env = {"CRM_DATA_DIR": str(tmp_path / "crm"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "crm_gateway.tokens", "keys"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
        env=env,
    )
    assert str(tmp_path / "crm" / "keys" / "jwks.json") in result.stdout
    assert (tmp_path / "crm" / "keys" / "private.pem").exists()


async def _grpc_call(gateway, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "crm_gateway.grpc_call",
        "--target",
        f"127.0.0.1:{gateway.port}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO_ROOT,
    )
    out, err = await process.communicate()
    return process.returncode, out.decode(), err.decode()


async def test_grpc_call_helper_creates_and_reads_through_the_gateway(gateway):
    token = gateway.token()
    status, out, err = await _grpc_call(
        gateway,
        "--token",
        token,
        "crm.customer.v1.CustomerService/CreateCustomer",
        '{"customer": {"display_name": "Initech", "tier": "CUSTOMER_TIER_B"}}',
    )
    assert status == 0, err
    created = json.loads(out)
    assert created["tier"] == "CUSTOMER_TIER_B"
    status, out, err = await _grpc_call(
        gateway,
        "--token",
        token,
        "crm.customer.v1.CustomerService/GetCustomer",
        json.dumps({"name": created["name"]}),
    )
    assert status == 0, err
    assert json.loads(out)["display_name"] == "Initech"


async def test_grpc_call_helper_prints_the_error_status_with_details(gateway):
    status, _, err = await _grpc_call(
        gateway,
        "--token",
        gateway.token(),
        "crm.customer.v1.CustomerService/CreateCustomer",
        '{"customer": {}}',
    )
    assert status == 1
    error = json.loads(err)
    assert error["code"] == 3
    assert error["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"


async def test_grpc_call_helper_health_without_token(gateway):
    status, out, err = await _grpc_call(gateway, "--no-token", "grpc.health.v1.Health/Check", "{}")
    assert status == 0, err
    assert json.loads(out)["status"] == "SERVING"
