"""Page tokens are opaque, tamper-proof and bound to their query; keyset paging walks every row once."""

import sqlite3
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from crm_shared.aip.fieldmask import resolve_update_mask
from crm_shared.aip.paging import (
    PageTokenCodec,
    SortKey,
    clamp_page_size,
    keyset_after,
    keyset_order,
    parse_list_request,
    parse_order_by,
)
from crm_shared.errors import InvalidArgument

CODEC = PageTokenCodec("test-secret")


def test_token_round_trip_keeps_types():
    moment = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    token = CODEC.encode([moment, "abc", 5], query="q1")
    assert CODEC.decode(token, query="q1") == [moment, "abc", 5]


def test_token_reveals_nothing_readable():
    token = CODEC.encode(["Acme Corporation"], query="q1")
    assert "Acme" not in token


def test_token_from_another_query_or_tampered_is_rejected():
    token = CODEC.encode(["x"], query="q1")
    with pytest.raises(InvalidArgument) as caught:
        CODEC.decode(token, query="q2")
    assert caught.value.field_violations[0].field == "page_token"
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    with pytest.raises(InvalidArgument):
        CODEC.decode(tampered, query="q1")
    with pytest.raises(InvalidArgument):
        PageTokenCodec("other-secret").decode(token, query="q1")


@given(st.text(max_size=80))
def test_garbage_tokens_are_invalid_argument(text):
    with pytest.raises(InvalidArgument):
        CODEC.decode(text, query="q")


def test_page_size_defaults_and_clamps():
    assert clamp_page_size(0) == 50
    assert clamp_page_size(10) == 10
    assert clamp_page_size(10_000) == 500
    with pytest.raises(InvalidArgument):
        clamp_page_size(-1)


def test_order_by_parsing():
    assert parse_order_by("", allowed=["a", "b"], default="a desc").fields == (("a", True),)
    assert parse_order_by("b, a desc", allowed=["a", "b"], default="a").fields == (("b", False), ("a", True))
    with pytest.raises(InvalidArgument, match="cannot order by 'c'"):
        parse_order_by("c", allowed=["a", "b"], default="a")
    with pytest.raises(InvalidArgument):
        parse_order_by("a sideways", allowed=["a"], default="a")


@pytest.mark.parametrize("descending", [False, True])
def test_keyset_pages_visit_every_row_exactly_once_with_ties(descending):
    table = sa.Table(
        "t", sa.MetaData(), sa.Column("id", sa.String, primary_key=True), sa.Column("at", sa.String)
    )
    engine = sa.create_engine("sqlite://", creator=lambda: sqlite3.connect(":memory:"))
    base = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {"id": f"{i:03d}", "at": (base + timedelta(minutes=i // 3)).isoformat()} for i in range(47)
    ]  # ties
    keys = [SortKey(table.c.at, descending), SortKey(table.c.id, descending)]
    seen = []
    with engine.begin() as conn:
        table.metadata.create_all(conn)
        conn.execute(sa.insert(table), rows)
        after = None
        while True:
            query = sa.select(table).order_by(*keyset_order(keys)).limit(10)
            if after is not None:
                query = query.where(keyset_after(keys, after))
            page = conn.execute(query).all()
            if not page:
                break
            seen.extend(r.id for r in page)
            after = CODEC.decode(CODEC.encode([page[-1].at, page[-1].id], query="q"), query="q")
    expected = sorted(rows, key=lambda r: (r["at"], r["id"]), reverse=descending)
    assert seen == [r["id"] for r in expected]


def test_update_mask_rules():
    writable = {"display_name", "tags"}
    assert resolve_update_mask(["display_name"], writable=writable) == {"display_name"}
    assert resolve_update_mask(["*"], writable=writable) == writable
    with pytest.raises(InvalidArgument) as caught:
        resolve_update_mask(["etag", "colour"], writable=writable)
    fields = {v.field: v.description for v in caught.value.field_violations}
    assert "output only" in fields["update_mask.paths[0]"]
    assert "unknown or read-only" in fields["update_mask.paths[1]"]
    with pytest.raises(InvalidArgument):
        resolve_update_mask([], writable=writable)


def test_dates_and_datetimes_survive_a_page_token_with_their_types():
    codec = PageTokenCodec("secret")
    keys = [date(2026, 3, 31), datetime(2026, 3, 31, 8, 30, tzinfo=UTC), "id-1"]
    decoded = codec.decode(codec.encode(keys, query="q"), query="q")
    assert decoded == keys
    assert type(decoded[0]) is date and type(decoded[1]) is datetime


def test_a_list_request_pages_through_rows_and_binds_its_token_to_the_caller():
    codec = PageTokenCodec("secret")

    class Row:
        def __init__(self, n: int) -> None:
            self.id, self.create_time = f"id-{n:02d}", datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=n)

    rows = [Row(n) for n in range(5)]
    first = parse_list_request(codec, collection="things", caller="alice", page_size=2, page_token="")
    assert first.after is None and first.limit == 2
    page = first.page(rows[:3], codec)  # the repository fetched limit + 1
    assert [r.id for r in page.items] == ["id-00", "id-01"] and page.next_page_token
    second = parse_list_request(
        codec, collection="things", caller="alice", page_size=2, page_token=page.next_page_token
    )
    assert second.after == [rows[1].create_time, "id-01"]
    assert second.page(rows[2:4], codec).next_page_token == ""  # exactly `limit` rows: the last page
    with pytest.raises(InvalidArgument):
        parse_list_request(
            codec, collection="things", caller="bob", page_size=2, page_token=page.next_page_token
        )
