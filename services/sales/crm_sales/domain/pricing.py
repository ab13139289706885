"""Quote and order arithmetic: integers in minor units only, never a float.

Rounding rule (documented in quote_service.proto): the two percentages — the
line's discount percent and its tax rate — are applied per line and rounded
half-to-even to a whole minor unit at that point. Everything else is exact
integer addition, so quote totals are exactly the sums of the line amounts:

    gross    = quantity * unit_price
    discount = round_half_even(gross * discount_percent_bp / 10_000) + discount_amount
    net      = gross - discount            (discount > gross is an input error)
    tax      = round_half_even(net * tax_rate_bp / 10_000)
    total    = net + tax

Python ints do not overflow, so bounds are explicit: every line amount and
every total must stay at or below MAX_AMOUNT_MINOR (10^15, far inside int64
and inside the 2^53 a JSON number can carry exactly); beyond is INVALID_ARGUMENT
naming the line's field, never a wrapped-around int64.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from crm_shared.errors import Violations

BASIS_POINTS = 10_000
MAX_AMOUNT_MINOR = 10**15
MAX_QUANTITY = 1_000_000_000
MAX_LINES = 200


def round_half_even(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to the nearest integer, ties to even (denominator > 0)."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    quotient, remainder = divmod(numerator, denominator)  # floor division: 0 <= remainder < denominator
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def apply_basis_points(amount: int, basis_points: int) -> int:
    return round_half_even(amount * basis_points, BASIS_POINTS)


@dataclass(frozen=True)
class LineInput:
    """A line as priced: the unit price is already resolved (given, price book or list price)."""

    quantity: int
    unit_price: int
    discount_percent_bp: int = 0
    discount_amount: int = 0
    tax_rate_bp: int = 0


@dataclass(frozen=True)
class LineAmounts:
    gross: int
    discount: int
    net: int
    tax: int
    total: int


@dataclass(frozen=True)
class Totals:
    subtotal: int
    discount_total: int
    tax_total: int
    grand_total: int


ZERO_TOTALS = Totals(0, 0, 0, 0)


def price_line(line: LineInput, path: str, violations: Violations) -> LineAmounts | None:
    """The line's amounts, or None with the problems added to `violations` under `path`."""
    bad = False
    if not 0 < line.quantity <= MAX_QUANTITY:
        violations.add(f"{path}.quantity", f"must be between 1 and {MAX_QUANTITY}")
        bad = True
    if not 0 <= line.unit_price <= MAX_AMOUNT_MINOR:
        violations.add(f"{path}.unit_price.amount_minor", f"must be between 0 and {MAX_AMOUNT_MINOR}")
        bad = True
    if not 0 <= line.discount_percent_bp <= BASIS_POINTS:
        violations.add(f"{path}.discount_percent_bp", f"must be between 0 and {BASIS_POINTS}")
        bad = True
    if not 0 <= line.discount_amount <= MAX_AMOUNT_MINOR:
        violations.add(f"{path}.discount_amount.amount_minor", f"must be between 0 and {MAX_AMOUNT_MINOR}")
        bad = True
    if not 0 <= line.tax_rate_bp <= BASIS_POINTS:
        violations.add(f"{path}.tax_rate_bp", f"must be between 0 and {BASIS_POINTS}")
        bad = True
    if bad:
        return None
    gross = line.quantity * line.unit_price
    if gross > MAX_AMOUNT_MINOR:
        violations.add(
            f"{path}.quantity",
            f"quantity x unit price is {gross} minor units, above the limit of {MAX_AMOUNT_MINOR}",
        )
        return None
    discount = apply_basis_points(gross, line.discount_percent_bp) + line.discount_amount
    if discount > gross:
        violations.add(
            f"{path}.discount_amount",
            f"the discount ({discount}) exceeds the line's gross amount ({gross}); a line cannot be negative",
        )
        return None
    net = gross - discount
    tax = apply_basis_points(net, line.tax_rate_bp)
    total = net + tax
    if total > MAX_AMOUNT_MINOR:
        violations.add(f"{path}.tax_rate_bp", f"the line total is above the limit of {MAX_AMOUNT_MINOR}")
        return None
    return LineAmounts(gross, discount, net, tax, total)


def sum_totals(amounts: Sequence[LineAmounts]) -> Totals:
    return Totals(
        subtotal=sum(a.gross for a in amounts),
        discount_total=sum(a.discount for a in amounts),
        tax_total=sum(a.tax for a in amounts),
        grand_total=sum(a.total for a in amounts),
    )


def price_lines(
    lines: Sequence[LineInput], *, path: str, violations: Violations
) -> tuple[list[LineAmounts], Totals]:
    """Price every line (collecting every problem) and sum them; raises nothing itself.

    The caller raises `violations` when it holds anything; the amounts returned
    then are meaningless.
    """
    if len(lines) > MAX_LINES:
        violations.add(path, f"at most {MAX_LINES} lines")
        return [], ZERO_TOTALS
    amounts: list[LineAmounts] = []
    for index, line in enumerate(lines):
        priced = price_line(line, f"{path}[{index}]", violations)
        amounts.append(priced or LineAmounts(0, 0, 0, 0, 0))
    totals = sum_totals(amounts)
    if totals.subtotal > MAX_AMOUNT_MINOR or totals.grand_total > MAX_AMOUNT_MINOR:
        violations.add(path, f"the quote total is above the limit of {MAX_AMOUNT_MINOR} minor units")
    return amounts, totals


def check_currency(expected: str, given: str, field_path: str, violations: Violations) -> None:
    """Amounts given with a currency must be in the document's currency (no implicit conversion)."""
    if given and given != expected:
        violations.add(field_path, f"currency {given} does not match the quote's currency {expected}")
