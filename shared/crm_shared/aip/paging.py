"""List pagination (AIP-158) with opaque, encrypted keyset page tokens.

A page token holds the sort key of the last row returned, never an offset, so
page 1000 costs what page 1 costs. It is AES-GCM encrypted and authenticated
with the service's secret: clients can neither read nor forge it, and a token
is only valid for the same query (filter, order, caller) it came from.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from crm_shared.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def clamp_page_size(requested: int, *, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE) -> int:
    """AIP-158: 0 means the default; above the maximum is coerced down, not rejected."""
    if requested < 0:
        raise InvalidArgument.for_field("page_size", "must not be negative")
    return default if requested == 0 else min(requested, maximum)


def query_fingerprint(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def _encode_value(value: Any) -> list:
    if isinstance(value, datetime):  # before date: a datetime is a date too
        return ["t", value.isoformat()]
    if isinstance(value, date):
        return ["d", value.isoformat()]
    return ["v", value]


def _decode_value(item: list) -> Any:
    kind, raw = item
    if kind == "t":
        return datetime.fromisoformat(raw)
    if kind == "d":
        return date.fromisoformat(raw)
    return raw


class PageTokenCodec:
    def __init__(self, secret: bytes | str) -> None:
        if not secret:
            raise ValueError("a page token secret is required")
        raw = secret.encode() if isinstance(secret, str) else secret
        self._aead = AESGCM(hashlib.sha256(b"crm-page-token:" + raw).digest())

    def encode(self, key_values: Sequence[Any], *, query: str) -> str:
        nonce = os.urandom(12)
        body = json.dumps([_encode_value(v) for v in key_values], separators=(",", ":")).encode()
        sealed = self._aead.encrypt(nonce, body, query.encode())
        return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def decode(self, token: str, *, query: str) -> list[Any]:
        try:
            blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            body = self._aead.decrypt(blob[:12], blob[12:], query.encode())
            return [_decode_value(item) for item in json.loads(body)]
        except (InvalidTag, ValueError, TypeError, IndexError) as exc:
            raise InvalidArgument.for_field(
                "page_token",
                "invalid page token, or not from a query with the same filter and order_by",
                reason="INVALID_PAGE_TOKEN",
            ) from exc


@dataclass(frozen=True)
class SortKey:
    column: sa.ColumnElement
    descending: bool = False


def keyset_order(keys: Sequence[SortKey]) -> list[sa.ColumnElement]:
    return [k.column.desc() if k.descending else k.column.asc() for k in keys]


def keyset_after(keys: Sequence[SortKey], values: Sequence[Any]) -> sa.ColumnElement[bool]:
    """Rows strictly after `values` in the order `keys` describe (mixed directions allowed).

    (k1 > v1) OR (k1 = v1 AND k2 > v2) OR ... — the expanded form works on every
    database and for mixed directions, unlike a row-value comparison.
    """
    if len(keys) != len(values):
        raise InvalidArgument.for_field("page_token", "page token does not match this query")
    clauses = []
    for i, key in enumerate(keys):
        equal_prefix = [keys[j].column == values[j] for j in range(i)]
        beyond = key.column < values[i] if key.descending else key.column > values[i]
        clauses.append(sa.and_(*equal_prefix, beyond))
    return sa.or_(*clauses)


@dataclass(frozen=True)
class OrderBy:
    """A parsed order_by: the sort keys plus the id tie-breaker that makes keysets unique."""

    fields: tuple[tuple[str, bool], ...]  # (field, descending)

    @property
    def canonical(self) -> str:
        return ",".join(f"{f} desc" if d else f for f, d in self.fields)


def parse_order_by(order_by: str, *, allowed: Sequence[str], default: str) -> OrderBy:
    """AIP-132 order_by: "field", "field desc", comma separated."""
    text = order_by.strip() or default
    fields: list[tuple[str, bool]] = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise InvalidArgument.for_field(
                "order_by", f"cannot parse {part.strip()!r}; use 'field' or 'field desc'"
            )
        if words[0] not in allowed:
            raise InvalidArgument.for_field(
                "order_by", f"cannot order by {words[0]!r}; allowed: {', '.join(allowed)}"
            )
        fields.append((words[0], len(words) == 2 and words[1].lower() == "desc"))
    return OrderBy(tuple(fields))


# --- one list request, start to finish ------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """One page of a List response."""

    items: list
    next_page_token: str


@dataclass(frozen=True)
class ListRequest:
    """An AIP-132 List request parsed and bound to its caller.

    `limit` is the clamped page size; repositories fetch `limit + 1` rows so `page()` can tell
    whether another page follows. `where` is the compiled filter (None: no filter), `after` the
    keyset of the last row of the previous page (None: first page).
    """

    limit: int
    order: OrderBy
    where: Any
    after: list | None
    fingerprint: str

    def page(self, rows: Sequence[Any], tokens: PageTokenCodec, *, key=None) -> Page:
        """The first `limit` rows plus a token that resumes after the last of them.

        `key(row)` gives the row's sort values (default: the order_by fields as attributes,
        then `id` as the tie-breaker).
        """
        items = list(rows[: self.limit])
        if len(rows) <= self.limit:
            return Page(items, "")
        last = items[-1]
        values = key(last) if key else [getattr(last, f) for f, _ in self.order.fields] + [last.id]
        return Page(items, tokens.encode(values, query=self.fingerprint))


def parse_list_request(
    tokens: PageTokenCodec,
    *,
    collection: str,
    caller: str,
    page_size: int,
    page_token: str,
    filter_text: str = "",
    filters=None,
    order_by: str = "",
    orderable: Sequence[str] = ("create_time",),
    default_order: str = "create_time desc",
    extra: Sequence[str] = (),
) -> ListRequest:
    """Clamp the page size, parse order_by and the filter, and open the page token.

    A token is bound to its query and caller (collection, filter, order, caller and any
    `extra` parts such as a parent or a flag): it is not replayable with another filter or by
    someone else.
    """
    limit = clamp_page_size(page_size)
    order = parse_order_by(order_by, allowed=orderable, default=default_order)
    where = filters.compile(filter_text) if filters is not None else None
    fingerprint = query_fingerprint(collection, filter_text.strip(), order.canonical, caller, *extra)
    after = tokens.decode(page_token, query=fingerprint) if page_token else None
    return ListRequest(limit, order, where, after, fingerprint)
