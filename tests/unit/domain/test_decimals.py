"""Exact decimal strings on the wire (DESIGN.md §2: up to 12 decimal places, validated)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.domain.decimals import format_decimal, parse_decimal
from billing.domain.errors import InvalidArgument


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", Decimal(0)),
        ("12", Decimal(12)),
        ("0.0125", Decimal("0.0125")),
        ("1.123456789012", Decimal("1.123456789012")),  # exactly 12 places
        ("999999999999999999.999999999999", Decimal("999999999999999999.999999999999")),
        ("1.250", Decimal("1.25")),
    ],
)
def test_parse_decimal_accepts_plain_positional_numbers(text: str, expected: Decimal) -> None:
    assert parse_decimal(text, "price.unit_amount") == expected


def test_parse_decimal_keeps_every_digit_of_a_30_digit_value() -> None:
    value = parse_decimal("123456789012345678.123456789012", "quantity")

    assert str(value) == "123456789012345678.123456789012"


@pytest.mark.parametrize(
    "text",
    [
        "1.1234567890123",  # 13 places
        "1e5",
        "1E5",
        "NaN",
        "nan",
        "sNaN",
        "Infinity",
        "-Infinity",
        "inf",
        " 1",
        "1 ",
        "1,000",
        "1_000",
        "",
        "+1",
        "01",
        "00.5",
        "1.",
        ".5",
        "0x10",
        "\u0661",  # ARABIC-INDIC DIGIT ONE: Decimal() would accept it
        "1234567890123456789",  # more than 18 integer digits
    ],
)
def test_parse_decimal_rejects_anything_but_plain_notation(text: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_decimal(text, "price.unit_amount")

    assert [v.field for v in caught.value.violations] == ["price.unit_amount"]


def test_too_many_decimal_places_says_how_many_are_allowed() -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_decimal("0.1234567890123", "price.tiers[0].unit_amount")

    (violation,) = caught.value.violations
    assert violation.field == "price.tiers[0].unit_amount"
    assert "at most 12 decimal places" in violation.description


@pytest.mark.parametrize("text", ["-1", "-0.5", "-0.000000000001"])
def test_negative_values_are_rejected_unless_allowed(text: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_decimal(text, "quantity")

    (violation,) = caught.value.violations
    assert violation.field == "quantity"
    assert "negative" in violation.description
    assert parse_decimal(text, "quantity", allow_negative=True) == Decimal(text)


def test_negative_zero_is_zero() -> None:
    assert parse_decimal("-0", "quantity") == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("1.2300"), "1.23"),
        (Decimal("100"), "100"),
        (Decimal("1E+3"), "1000"),
        (Decimal("1.000"), "1"),
        (Decimal("0"), "0"),
        (Decimal("0.000"), "0"),
        (Decimal("-0"), "0"),
        (Decimal("-0.50"), "-0.5"),
        (Decimal("1E-10"), "0.0000000001"),
        (Decimal("0.0125"), "0.0125"),
        # 30 significant digits: a context-rounding normalize() would change this value.
        (Decimal("123456789012345678.123456789012"), "123456789012345678.123456789012"),
        (Decimal("999999999999999999.999999999999"), "999999999999999999.999999999999"),
    ],
)
def test_format_decimal_is_canonical(value: Decimal, expected: str) -> None:
    assert format_decimal(value) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.decimals(
        min_value=Decimal("-999999999999999999.999999999999"),
        max_value=Decimal("999999999999999999.999999999999"),
        places=12,
        allow_nan=False,
        allow_infinity=False,
    )
)
def test_format_then_parse_gives_back_the_same_value(value: Decimal) -> None:
    text = format_decimal(value)

    assert parse_decimal(text, "x", allow_negative=True) == value
    assert format_decimal(parse_decimal(text, "x", allow_negative=True)) == text
