"""The AIP-160 filter subset: parsing, clear errors, and SQL that selects the right rows (real SQLite)."""

import contextlib
import sqlite3

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_shared.aip.filtering import FilterField, FilterSchema, parse_filter
from crm_shared.errors import InvalidArgument

items = sa.Table(
    "items",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String),
    sa.Column("tier", sa.String),
    sa.Column("amount", sa.Float),
    sa.Column("active", sa.Boolean),
)
SCHEMA = FilterSchema(
    {
        "name": FilterField.string(items.c.name, operators="= != < <= > >="),
        "tier": FilterField.enum(items.c.tier, {"TIER_A": "A", "TIER_B": "B"}),
        "amount": FilterField.number(items.c.amount),
        "active": FilterField.boolean(items.c.active),
    }
)
ROWS = [
    (1, "Acme", "A", 100.0, True),
    (2, "Beta", "B", 50.0, True),
    (3, "Gamma 公司", "A", 10.0, False),
    (4, "Delta", "B", 500.0, False),
]


def matching_ids(text: str) -> list[int]:
    engine = sa.create_engine("sqlite://", creator=lambda: sqlite3.connect(":memory:"))
    with engine.begin() as conn:
        items.metadata.create_all(conn)
        conn.execute(
            sa.insert(items),
            [dict(zip(("id", "name", "tier", "amount", "active"), r, strict=True)) for r in ROWS],
        )
        where = SCHEMA.compile(text)
        query = sa.select(items.c.id).order_by(items.c.id)
        if where is not None:
            query = query.where(where)
        return list(conn.execute(query).scalars())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", [1, 2, 3, 4]),
        ("tier = TIER_A", [1, 3]),
        ('name = "Acme"', [1]),
        ('name = "Gamma 公司"', [3]),
        ("amount >= 100", [1, 4]),
        ("tier = TIER_A AND active = true", [1]),
        ("tier = TIER_A active = false", [3]),  # juxtaposition is AND
        ("tier = TIER_B OR amount < 20", [2, 3, 4]),
        ("NOT tier = TIER_A", [2, 4]),
        ("-tier = TIER_A", [2, 4]),
        ("(tier = TIER_A OR tier = TIER_B) AND amount > 60", [1, 4]),
        ('name != "Beta" AND NOT (amount > 200)', [1, 3]),
    ],
)
def test_filters_select_the_right_rows(text, expected):
    assert matching_ids(text) == expected


@pytest.mark.parametrize(
    ("text", "message_part"),
    [
        ("colour = red", "unknown field 'colour'"),
        ("tier > TIER_A", "operator '>' is not supported on 'tier'"),
        ("tier = TIER_Z", "'TIER_Z' is not one of TIER_A, TIER_B"),
        ("amount = lots", "not a number"),
        ("active = yes", "not a boolean"),
        ("(tier = TIER_A", "unexpected end"),
        ("tier = TIER_A)", "unexpected ')'"),
        ("tier TIER_A", "expected an operator"),
        ("AND tier = TIER_A", "expected a field name"),
    ],
)
def test_bad_filters_say_what_is_wrong(text, message_part):
    with pytest.raises(InvalidArgument) as caught:
        SCHEMA.compile(text)
    violation = caught.value.field_violations[0]
    assert violation.field == "filter"
    assert message_part in violation.description
    assert caught.value.reason == "INVALID_FILTER"


def test_escaped_quotes_in_strings():
    node = parse_filter(r'name = "say \"hi\""')
    assert node.value == 'say "hi"'


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_text_parses_or_fails_with_invalid_argument(text):
    """Fuzz: whatever a client sends, the answer is a predicate or INVALID_ARGUMENT — never a crash."""
    with contextlib.suppress(InvalidArgument):
        SCHEMA.compile(text)


def test_deep_nesting_is_refused():
    with pytest.raises(InvalidArgument, match="nested too deeply"):
        SCHEMA.compile("(" * 50 + "tier = TIER_A" + ")" * 50)
