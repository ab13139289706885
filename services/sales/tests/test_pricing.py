"""Quote arithmetic and the quote status machine, property-based: integers only, totals are sums."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_sales.domain import pricing
from crm_sales.domain.pricing import LineInput
from crm_sales.domain.quotes import (
    QUOTE_TRANSITIONS,
    Catalog,
    CatalogProduct,
    Quote,
    QuoteStatus,
    RawLine,
    accept_quote,
    build_lines,
    next_status,
    revise_quote,
    send_quote,
)
from crm_shared.errors import FailedPrecondition, InvalidArgument, Violations

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

lines_strategy = st.builds(
    LineInput,
    quantity=st.integers(1, 10_000),
    unit_price=st.integers(0, 10**9),
    discount_percent_bp=st.integers(0, 10_000),
    discount_amount=st.integers(0, 10**6),
    tax_rate_bp=st.integers(0, 10_000),
)


def independent_round(value: Fraction) -> int:
    """Half-to-even of an exact rational, written differently from the code under test."""
    floor = value.numerator // value.denominator
    rest = value - floor
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2 == 1):
        return floor + 1
    return floor


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (5, 2, 2),
        (7, 2, 4),
        (-5, 2, -2),
        (-7, 2, -4),
        (1, 3, 0),
        (2, 3, 1),
        (15, 10, 2),
        (25, 10, 2),
        (0, 7, 0),
    ],
)
def test_round_half_even_examples(numerator, denominator, expected):
    assert pricing.round_half_even(numerator, denominator) == expected


@given(st.integers(-(10**20), 10**20), st.integers(1, 10**6))
def test_round_half_even_matches_exact_rational_rounding(numerator, denominator):
    assert pricing.round_half_even(numerator, denominator) == independent_round(
        Fraction(numerator, denominator)
    )


@settings(max_examples=300)
@given(st.lists(lines_strategy, min_size=0, max_size=30))
def test_totals_always_equal_the_sum_of_lines_and_are_ints(lines):
    violations = Violations()
    amounts, totals = pricing.price_lines(lines, path="quote.lines", violations=violations)
    if violations.items:
        # The only way to fail with these inputs: a discount amount above the gross.
        assert all(v.field.endswith(".discount_amount") for v in violations.items)
        return
    assert totals.subtotal == sum(a.gross for a in amounts)
    assert totals.discount_total == sum(a.discount for a in amounts)
    assert totals.tax_total == sum(a.tax for a in amounts)
    assert totals.grand_total == sum(a.total for a in amounts)
    assert totals.grand_total == totals.subtotal - totals.discount_total + totals.tax_total
    for line, a in zip(lines, amounts, strict=True):
        for value in (a.gross, a.discount, a.net, a.tax, a.total):
            assert type(value) is int  # never a float, never a Decimal
        assert a.total == a.net + a.tax
        assert a.net == a.gross - a.discount
        assert a.net >= 0 and a.tax >= 0
        # Independent computation with exact rationals.
        gross = line.quantity * line.unit_price
        discount = (
            independent_round(Fraction(gross * line.discount_percent_bp, 10_000)) + line.discount_amount
        )
        tax = independent_round(Fraction((gross - discount) * line.tax_rate_bp, 10_000))
        assert (a.gross, a.discount, a.tax) == (gross, discount, tax)


@given(lines_strategy)
def test_a_discount_never_makes_a_line_negative(line):
    violations = Violations()
    priced = pricing.price_line(line, "quote.lines[0]", violations)
    if priced is None:
        assert [v.field for v in violations.items] == ["quote.lines[0].discount_amount"]
        assert line.discount_amount > line.quantity * line.unit_price - pricing.apply_basis_points(
            line.quantity * line.unit_price, line.discount_percent_bp
        )
    else:
        assert priced.net >= 0 and priced.total >= 0


@given(
    st.integers(1, pricing.MAX_QUANTITY),
    st.integers(0, pricing.MAX_AMOUNT_MINOR),
)
def test_huge_quantities_and_prices_are_bounded_not_wrapped(quantity, unit_price):
    violations = Violations()
    priced = pricing.price_line(LineInput(quantity, unit_price), "quote.lines[3]", violations)
    if quantity * unit_price > pricing.MAX_AMOUNT_MINOR:
        assert priced is None
        assert violations.items[0].field == "quote.lines[3].quantity"
    else:
        assert priced is not None and priced.gross == quantity * unit_price
        assert priced.total <= pricing.MAX_AMOUNT_MINOR < 2**63


def test_out_of_range_inputs_name_their_fields():
    violations = Violations()
    pricing.price_line(
        LineInput(quantity=0, unit_price=-1, discount_percent_bp=10_001, discount_amount=-5, tax_rate_bp=-1),
        "quote.lines[2]",
        violations,
    )
    assert {v.field for v in violations.items} == {
        "quote.lines[2].quantity",
        "quote.lines[2].unit_price.amount_minor",
        "quote.lines[2].discount_percent_bp",
        "quote.lines[2].discount_amount.amount_minor",
        "quote.lines[2].tax_rate_bp",
    }


def test_many_lines_each_below_the_limit_still_bounded_in_total():
    big = LineInput(quantity=1, unit_price=pricing.MAX_AMOUNT_MINOR)
    violations = Violations()
    pricing.price_lines([big, big], path="quote.lines", violations=violations)
    assert [v.field for v in violations.items] == ["quote.lines"]


WIDGET = CatalogProduct(
    sku="W-1", display_name="Widget", active=True, list_price_currency="CNY", list_price=1000
)


def test_unit_price_defaults_from_volume_tier_then_list_price_and_currency_mismatch_is_rejected():
    catalog = Catalog(products={"p1": WIDGET}, book_prices={"p1": [(1, 900), (10, 800)]})
    violations = Violations()
    lines, totals = build_lines(
        [RawLine(product_id="p1", quantity=5), RawLine(product_id="p1", quantity=12)],
        currency="CNY",
        catalog=catalog,
        path="quote.lines",
        violations=violations,
    )
    assert not violations.items
    assert [line.unit_price for line in lines] == [900, 800]
    assert totals.subtotal == 5 * 900 + 12 * 800
    lines, _ = build_lines(
        [RawLine(product_id="p1", quantity=1)],
        currency="CNY",
        catalog=Catalog(products={"p1": WIDGET}),
        path="quote.lines",
        violations=violations,
    )
    assert lines[0].unit_price == 1000 and lines[0].sku == "W-1" and lines[0].description == "Widget"

    build_lines(
        [
            RawLine(product_id="p1", quantity=1),  # list price is CNY, quote is USD: no default price
            RawLine(description="Setup", quantity=1, unit_price=100, unit_price_currency="EUR"),
            RawLine(quantity=1, unit_price=5),  # no product and no description
        ],
        currency="USD",
        catalog=Catalog(products={"p1": WIDGET}),
        path="quote.lines",
        violations=violations,
    )
    assert {v.field for v in violations.items} == {
        "quote.lines[0].unit_price",
        "quote.lines[1].unit_price.currency_code",
        "quote.lines[2].description",
    }


# --- the status machine -----------------------------------------------------------------------------

ACTIONS = sorted(QUOTE_TRANSITIONS)
LEGAL = {
    (QuoteStatus.DRAFT, "send"): QuoteStatus.SENT,
    (QuoteStatus.SENT, "accept"): QuoteStatus.ACCEPTED,
    (QuoteStatus.SENT, "reject"): QuoteStatus.REJECTED,
    (QuoteStatus.SENT, "expire"): QuoteStatus.EXPIRED,
    (QuoteStatus.SENT, "revise"): QuoteStatus.DRAFT,
    (QuoteStatus.REJECTED, "revise"): QuoteStatus.DRAFT,
    (QuoteStatus.EXPIRED, "revise"): QuoteStatus.DRAFT,
}


@given(st.lists(st.sampled_from([a for a in ACTIONS if a not in ("update", "delete")]), max_size=20))
def test_status_machine_only_takes_legal_transitions_and_accepted_is_final(actions):
    status = QuoteStatus.DRAFT
    for action in actions:
        if (status, action) in LEGAL:
            expected = LEGAL[(status, action)]
            status = next_status(status, action)
            assert status is expected
        else:
            with pytest.raises(FailedPrecondition):
                next_status(status, action)
    # Once accepted nothing moves it again.
    if status is QuoteStatus.ACCEPTED:
        for action in ACTIONS:
            with pytest.raises(FailedPrecondition):
                next_status(status, action)


def test_every_status_action_pair_is_legal_exactly_as_documented():
    for status in QuoteStatus:
        for action in ("send", "accept", "reject", "expire", "revise"):
            if (status, action) in LEGAL:
                assert next_status(status, action) is LEGAL[(status, action)]
            else:
                with pytest.raises(FailedPrecondition):
                    next_status(status, action)


def quote(**overrides) -> Quote:
    values = dict(
        id="q1",
        number="Q-000001",
        customer="customers/x",
        currency="CNY",
        owner="bob",
        team="east",
        create_time=NOW,
        update_time=NOW,
    )
    values.update(overrides)
    return Quote(**values)


def test_send_needs_lines_and_validity_accept_refuses_an_expired_quote_revise_bumps_the_version():
    with pytest.raises(FailedPrecondition) as caught:
        send_quote(quote(), now=NOW)
    assert caught.value.reason == "QUOTE_INCOMPLETE"
    catalog = Catalog(products={"p1": WIDGET})
    lines, totals = build_lines(
        [RawLine(product_id="p1", quantity=2)],
        currency="CNY",
        catalog=catalog,
        path="l",
        violations=Violations(),
    )
    draft = quote(lines=lines, totals=totals, valid_until=NOW + timedelta(days=7))
    sent = send_quote(draft, now=NOW)
    assert sent.status is QuoteStatus.SENT and sent.row_version == draft.row_version + 1
    with pytest.raises(FailedPrecondition) as caught:
        accept_quote(sent, now=NOW + timedelta(days=8), order_id="o1")
    assert caught.value.reason == "QUOTE_EXPIRED"
    accepted = accept_quote(sent, now=NOW + timedelta(days=1), order_id="o1")
    assert accepted.status is QuoteStatus.ACCEPTED and accepted.order_id == "o1"
    with pytest.raises(FailedPrecondition):
        revise_quote(accepted, now=NOW)
    revised = revise_quote(sent, now=NOW + timedelta(days=1))
    assert (revised.status, revised.version, revised.number) == (QuoteStatus.DRAFT, 2, "Q-000001")


def test_invalid_argument_is_what_violations_raise():
    violations = Violations()
    pricing.check_currency("CNY", "USD", "quote.lines[0].unit_price.currency_code", violations)
    with pytest.raises(InvalidArgument) as caught:
        violations.raise_if_any()
    assert caught.value.field_violations[0].field == "quote.lines[0].unit_price.currency_code"


currencies = st.sampled_from(["CNY", "USD", "EUR", "JPY"])


@given(currencies, currencies, currencies, st.integers(1, 100), st.integers(0, 10**6))
def test_any_amount_in_another_currency_is_rejected_never_converted(
    quote_ccy, price_ccy, discount_ccy, qty, price
):
    violations = Violations()
    lines, _ = build_lines(
        [
            RawLine(
                description="x",
                quantity=qty,
                unit_price=price,
                unit_price_currency=price_ccy,
                discount_amount=0,
                discount_currency=discount_ccy,
            )
        ],
        currency=quote_ccy,
        catalog=Catalog(),
        path="quote.lines",
        violations=violations,
    )
    expected = set()
    if price_ccy != quote_ccy:
        expected.add("quote.lines[0].unit_price.currency_code")
    if discount_ccy != quote_ccy:
        expected.add("quote.lines[0].discount_amount.currency_code")
    assert {v.field for v in violations.items} == expected
    if not expected:
        assert lines[0].amounts.gross == qty * price
