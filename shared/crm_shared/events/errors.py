"""Which handler failures are worth retrying (nak with backoff) and which are poison (term + dead letter)."""

from __future__ import annotations

import asyncio

from sqlalchemy import exc as sa_exc

from crm_shared.errors import Unavailable

# PostgreSQL serialization failure and deadlock: the transaction may succeed when run again.
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03", "57P01", "57P02", "57P03"})


class TransientError(Exception):
    """Raise from a handler when retrying later may succeed (a dependency is down, a lock timed out)."""


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    for candidate in (orig, getattr(orig, "__cause__", None)):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if code:
            return str(code)
    return None


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TransientError | Unavailable | ConnectionError | asyncio.TimeoutError):
        return True
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        return bool(exc.connection_invalidated) or _sqlstate(exc) in _RETRYABLE_SQLSTATES
    return False
