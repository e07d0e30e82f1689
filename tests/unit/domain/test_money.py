"""Currencies, the one rounding rule and largest-remainder allocation (DESIGN.md §2)."""

from __future__ import annotations

import decimal
from decimal import Decimal

import pytest

from billing.domain.errors import InvalidArgument
from billing.domain.money import EXACT, allocate, exact_sum, exponent, is_currency, round_minor


@pytest.mark.parametrize(
    ("currency", "expected"),
    [
        ("JPY", 0),
        ("KRW", 0),
        ("USD", 2),
        ("EUR", 2),
        ("SEK", 2),
        ("MGA", 2),
        ("KWD", 3),
        ("BHD", 3),
        ("OMR", 3),
    ],
)
def test_exponent_is_the_iso_4217_minor_unit(currency: str, expected: int) -> None:
    assert exponent(currency) == expected
    assert is_currency(currency)


# Funds codes (CLF, UYI), metals (XAU), test codes (XTS) and withdrawn codes (ANG) are not billed in.
@pytest.mark.parametrize("currency", ["XYZ", "", "US", "XAU", "XTS", "CLF", "UYI", "ANG"])
def test_an_unknown_currency_is_an_invalid_argument_naming_the_currency_field(
    currency: str,
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        exponent(currency)

    assert [v.field for v in caught.value.violations] == ["currency"]
    assert not is_currency(currency)


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("2.5", 3),  # exactly half: away from zero
        ("-2.5", -3),  # exactly half, negative: still away from zero
        ("2.4999", 2),  # just below half: down
        ("-2.4999", -2),
        ("2.5000000000001", 3),
        ("3.5", 4),
        ("4.5", 5),  # half-even would give 4: we are half-up
        ("0.5", 1),
        ("-0.5", -1),
        ("0.4999999999999", 0),
        ("0", 0),
        ("7", 7),
        ("123456789012345678.5", 123456789012345679),
    ],
)
def test_round_minor_rounds_half_away_from_zero(amount: str, expected: int) -> None:
    rounded = round_minor(Decimal(amount))

    assert rounded == expected
    assert type(rounded) is int


def test_exact_sum_keeps_digits_the_default_context_would_round_away() -> None:
    values = [Decimal("123456789012345678.123456789012"), Decimal("0.000000000001")]

    # 30 significant digits: the default 28-digit context would round the last two away.
    assert exact_sum(values) == Decimal("123456789012345678.123456789013")
    assert sum(values) != Decimal("123456789012345678.123456789013")


def test_exact_arithmetic_refuses_to_round_silently() -> None:
    with pytest.raises(decimal.Inexact):
        EXACT.divide(Decimal(1), Decimal(3))


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        # 100/3 = 33 r1 each; the single leftover cent goes to the first (ties to earlier).
        (100, [1, 1, 1], [34, 33, 33]),
        # Exact shares need no leftover: 10*3/10, 10*3/10, 10*4/10.
        (10, [3, 3, 4], [3, 3, 4]),
        # 1000/6 = 166 r4, 2000/6 = 333 r2, 3000/6 = 500 r0; leftover 1 -> largest remainder (first).
        (1000, [1, 2, 3], [167, 333, 500]),
        # 5*1/2 = 2 r1 twice; leftover 1 -> the earlier of the tie.
        (5, [1, 1], [3, 2]),
        # 2/3 = 0 r2 each; leftover 2 -> the first two.
        (2, [1, 1, 1], [1, 1, 0]),
        # 7/3: 0, 14/3 = 4 r2, 0, 7/3 = 2 r1; leftover 1 -> index 1; zero weights stay zero.
        (7, [0, 2, 0, 1], [0, 5, 0, 2]),
        # Every weight zero: split equally, 7/2 = 3 r1 each, leftover -> first.
        (7, [0, 0], [4, 3]),
        (0, [1, 2], [0, 0]),
        (0, [], []),
        # Negative totals mirror positive ones: the leftover is a negative unit.
        (-100, [1, 1, 1], [-34, -33, -33]),
        (-5, [1, 1], [-3, -2]),
        (-1000, [1, 2, 3], [-167, -333, -500]),
    ],
)
def test_allocate_splits_by_largest_remainder(total: int, weights: list[int], expected: list[int]) -> None:
    parts = allocate(total, weights)

    assert parts == expected
    assert sum(parts) == total


def test_allocate_refuses_a_non_zero_total_across_nothing() -> None:
    with pytest.raises(ValueError, match="across nothing"):
        allocate(1, [])


def test_allocate_refuses_negative_weights() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        allocate(10, [1, -1])
