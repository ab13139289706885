"""Envelope encryption of personal data: one data key per data subject, wrapped by the key ring.

Each subject (a customer, with its contacts) gets a random 256-bit data key. The
key is stored only wrapped (AES-GCM under the key ring's active key, AAD = the
subject id); personal fields are sealed with the data key (AAD = table, column,
row). Two properties follow:

- Crypto-shredding: deleting the wrapped data key makes every ciphertext of that
  subject unreadable — in the live database, replicas and backups alike.
- Cheap rotation: a new key-ring key only re-wraps the data keys (32 bytes each),
  never re-encrypts the data itself.

Exact lookups go through blind indexes (HMAC with a separate key) of normalized
values, which reveal nothing without that key and are deleted on erasure too.
"""

from __future__ import annotations

import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from crm_shared.pii.crypto import BlindIndex, DecryptionError, KeyRing, field_aad


def _subject_aad(subject_id: str) -> bytes:
    return f"data-key:{subject_id}".encode()


class SubjectCipher:
    """Seals and opens one subject's fields with its data key."""

    def __init__(self, data_key: bytes) -> None:
        self._aead = AESGCM(data_key)

    def seal(self, value: Any, *, table: str, column: str, row_id: str) -> bytes | None:
        """JSON-encode and encrypt; None/empty values are stored as NULL."""
        if value in (None, "", [], {}):
            return None
        nonce = os.urandom(12)
        plaintext = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
        return nonce + self._aead.encrypt(nonce, plaintext, field_aad(table, column, row_id))

    def open(self, blob: bytes | None, *, table: str, column: str, row_id: str, default: Any = None) -> Any:
        if blob is None:
            return default
        blob = bytes(blob)
        try:
            plaintext = self._aead.decrypt(blob[:12], blob[12:], field_aad(table, column, row_id))
        except (InvalidTag, ValueError) as exc:
            raise DecryptionError(f"{table}.{column} of {row_id} does not decrypt") from exc
        return json.loads(plaintext)


class ShreddedCipher:
    """Stands in for a subject whose data key was destroyed: every personal field reads as absent."""

    def seal(self, value: Any, *, table: str, column: str, row_id: str) -> bytes | None:
        # Saving an erased subject's non-personal changes (a pool move, a stage) is fine;
        # storing new personal data for it is not.
        if value in (None, "", [], {}):
            return None
        raise DecryptionError("this subject's personal data was erased; nothing new can be stored")

    def open(self, blob: bytes | None, *, table: str, column: str, row_id: str, default: Any = None) -> Any:
        return default


class PersonalDataCodec:
    def __init__(self, key_ring: KeyRing, blind_index: BlindIndex) -> None:
        self.key_ring = key_ring
        self.blind_index = blind_index

    def new_data_key(self, subject_id: str) -> tuple[SubjectCipher, bytes]:
        """A fresh data key for a subject: its cipher, and the wrapped key to store."""
        data_key = AESGCM.generate_key(bit_length=256)
        return SubjectCipher(data_key), self.wrap(data_key, subject_id)

    def wrap(self, data_key: bytes, subject_id: str) -> bytes:
        return self.key_ring.encrypt(data_key, _subject_aad(subject_id))

    def unwrap(self, wrapped: bytes, subject_id: str) -> bytes:
        return self.key_ring.decrypt(bytes(wrapped), _subject_aad(subject_id))

    def cipher(self, wrapped: bytes | None, subject_id: str) -> SubjectCipher | ShreddedCipher:
        """The subject's cipher from its stored wrapped key; None (erased) gives a ShreddedCipher."""
        if wrapped is None:
            return ShreddedCipher()
        return SubjectCipher(self.unwrap(wrapped, subject_id))

    def rewrap(self, wrapped: bytes, subject_id: str) -> bytes | None:
        """The same data key wrapped under the active key ring key; None when already current."""
        if not self.key_ring.needs_rotation(bytes(wrapped)):
            return None
        return self.wrap(self.unwrap(wrapped, subject_id), subject_id)

    def digest(self, kind: str, normalized_value: str) -> str:
        return self.blind_index.digest(kind, normalized_value)
