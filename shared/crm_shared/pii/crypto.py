"""AES-GCM field encryption with a key ring, and HMAC blind indexes for exact lookups.

Ciphertext layout: version byte | key-id length | key id | 12-byte nonce | AES-GCM output.
The key id travels with the ciphertext, so keys rotate without a flag day: new
writes use the active (first) key, old rows still decrypt with theirs until
they are re-encrypted. AAD binds a ciphertext to its table, column and row, so
a value copied into another row or column fails to decrypt instead of leaking.

Blind index: HMAC-SHA256 (separate key) of the normalized value, so "find the
customer with this email" is an indexed equality without storing the email.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = 1


class DecryptionError(Exception):
    """A ciphertext could not be decrypted (unknown key, wrong AAD, tampered or shredded)."""


def _decode_key(text: str) -> bytes:
    key = base64.b64decode(text.strip())
    if len(key) != 32:
        raise ValueError("encryption keys must be 32 bytes (base64 of 32 random bytes)")
    return key


def generate_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@dataclass(frozen=True)
class KeyRing:
    keys: dict[str, AESGCM]
    active_kid: str

    @classmethod
    def from_spec(cls, spec: str) -> KeyRing:
        """Parse "kid:base64key[,kid:base64key…]"; the first key is used for new writes."""
        entries = [part.strip() for part in spec.split(",") if part.strip()]
        if not entries:
            raise ValueError("the PII key ring is empty: set it (make run generates a dev key ring)")
        keys: dict[str, AESGCM] = {}
        for entry in entries:
            kid, sep, key = entry.partition(":")
            if not sep or not kid or len(kid.encode()) > 255:
                raise ValueError("key ring entries look like 'kid:base64key'")
            keys[kid] = AESGCM(_decode_key(key))
        return cls(keys, entries[0].partition(":")[0])

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(12)
        kid = self.active_kid.encode()
        sealed = self.keys[self.active_kid].encrypt(nonce, plaintext, aad)
        return bytes([_VERSION, len(kid)]) + kid + nonce + sealed

    def decrypt(self, blob: bytes, aad: bytes) -> bytes:
        try:
            if blob[0] != _VERSION:
                raise DecryptionError("unknown ciphertext version")
            kid_len = blob[1]
            kid = blob[2 : 2 + kid_len].decode()
            nonce = blob[2 + kid_len : 14 + kid_len]
            key = self.keys.get(kid)
            if key is None:
                raise DecryptionError(f"no key {kid!r} in the key ring")
            return key.decrypt(nonce, blob[14 + kid_len :], aad)
        except (InvalidTag, IndexError, UnicodeDecodeError) as exc:
            raise DecryptionError("ciphertext does not decrypt with this key ring and AAD") from exc

    def key_id_of(self, blob: bytes) -> str:
        return blob[2 : 2 + blob[1]].decode()

    def needs_rotation(self, blob: bytes) -> bool:
        return self.key_id_of(blob) != self.active_kid


class BlindIndex:
    def __init__(self, key_b64: str) -> None:
        self._key = _decode_key(key_b64)

    def digest(self, kind: str, normalized_value: str) -> str:
        """Hex HMAC of "kind:value"; the kind keeps an email and a phone from ever colliding."""
        return hmac.new(self._key, f"{kind}:{normalized_value}".encode(), hashlib.sha256).hexdigest()


def field_aad(table: str, column: str, row_id: str) -> bytes:
    return f"{table}.{column}.{row_id}".encode()
