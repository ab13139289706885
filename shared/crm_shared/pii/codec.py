"""Seal and open personal data for one table/column/row, and blind-index it."""

from __future__ import annotations

import json
from typing import Any

from crm_shared.pii.crypto import BlindIndex, KeyRing, field_aad


class PersonalDataCodec:
    def __init__(self, key_ring: KeyRing, blind_index: BlindIndex) -> None:
        self.key_ring = key_ring
        self.blind_index = blind_index

    def seal(self, value: Any, *, table: str, column: str, row_id: str) -> bytes | None:
        """JSON-encode and encrypt; None/empty values are stored as NULL."""
        if value in (None, "", [], {}):
            return None
        plaintext = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
        return self.key_ring.encrypt(plaintext, field_aad(table, column, row_id))

    def open(self, blob: bytes | None, *, table: str, column: str, row_id: str, default: Any = None) -> Any:
        if blob is None:
            return default
        return json.loads(self.key_ring.decrypt(bytes(blob), field_aad(table, column, row_id)))

    def digest(self, kind: str, normalized_value: str) -> str:
        return self.blind_index.digest(kind, normalized_value)
