"""The seed file: who the personas are and which records each may touch, plus how to sign tokens.

Written by crm_load.seed against a running stack, read by every Locust process (a distributed
worker gets a copy). Identities are split so that no two Locust users share one unless there are
more users than seeded identities (seed for the largest user count you will run).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crm_load import env

TOKEN_TTL_SECONDS = 12 * 3600


@functools.cache
def load(path: str | None = None) -> dict[str, Any]:
    chosen = path or (str(env.path(env.SEED_FILE)) if env.path(env.SEED_FILE) else None)
    if not chosen:
        raise RuntimeError(f"${env.SEED_FILE} is not set: run `python -m crm_load seed` and point it there")
    return json.loads(Path(chosen).read_text())


def write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True))


@dataclass(frozen=True)
class Identity:
    subject: str
    role: str
    team: str


class TokenMinter:
    """Signs the personas' JWTs with the key the gateway and services trust (dev keys locally)."""

    def __init__(self, keys_dir: Path, issuer: str, audience: str) -> None:
        import dataclasses

        from cryptography.hazmat.primitives import serialization

        from crm_shared.auth.dev_keys import generate_dev_keys

        if not (keys_dir / "private.pem").exists():
            # generate_dev_keys would create a fresh key nobody trusts: every call would be 401.
            raise RuntimeError(f"no signing key at {keys_dir / 'private.pem'} (set ${env.KEYS_DIR})")
        keys = generate_dev_keys(keys_dir)
        # Parse the PEM once: jwt.encode would parse and check the RSA key on every token (~50-80 ms
        # of CPU), which stalls Locust's event loop while hundreds of users spawn.
        parsed = serialization.load_pem_private_key(keys.private_key_pem, password=None)
        self._keys = dataclasses.replace(keys, private_key_pem=parsed)
        self._issuer, self._audience = issuer, audience

    @functools.cache  # noqa: B019 - one minter per process, a few thousand identities at most
    def token(self, identity: Identity) -> str:
        from crm_shared.auth.dev_keys import mint_token

        return mint_token(
            self._keys,
            subject=identity.subject,
            roles=[identity.role],
            team=identity.team,
            issuer=self._issuer,
            audience=self._audience,
            ttl_seconds=TOKEN_TTL_SECONDS,
        )


@functools.cache
def minter() -> TokenMinter:
    data = load()
    keys_dir = env.path(env.KEYS_DIR) or Path(data["keys_dir"])
    return TokenMinter(keys_dir, data["issuer"], data["audience"])
