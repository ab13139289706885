"""Identifiers: time-ordered UUIDv7, so primary keys index well and sort by creation."""

from __future__ import annotations

import uuid

import uuid6


def new_id() -> str:
    """A new UUIDv7 in canonical lower-case form."""
    return str(uuid6.uuid7())


def derived_id(namespace: str, key: str) -> str:
    """A stable UUID derived from a key, e.g. a request_id derived from a lead id so retries match."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"crm:{namespace}:{key}"))
