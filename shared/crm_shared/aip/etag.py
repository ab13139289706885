"""Etags (AIP-154): an opaque version tag; a stale one means someone else changed the resource."""

from __future__ import annotations

import hashlib

from crm_shared.errors import Aborted


def etag_for(resource_id: str, version: int) -> str:
    return hashlib.sha256(f"{resource_id}:{version}".encode()).hexdigest()[:20]


def check_etag(given: str, resource_id: str, version: int, *, resource: str) -> None:
    """Empty `given` means "no precondition"; a mismatch fails with ABORTED so the caller re-reads."""
    if given and given != etag_for(resource_id, version):
        raise Aborted(
            f"{resource} was changed by someone else; read it again and retry with the new etag",
            reason="STALE_ETAG",
            metadata={"resource": resource},
        )
