"""Per-unit pricing: quantity x unit amount, exact, rounded once on the line."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.domain.errors import InvalidArgument, Violations
from billing.domain.money import round_minor
from billing.domain.pricing import PerUnit, Usage


def violation_fields(model: PerUnit) -> list[str]:
    errors = Violations()
    model.validate(errors, "price")
    try:
        errors.raise_if_any()
    except InvalidArgument as error:
        return [v.field for v in error.violations]
    return []


def amount(unit_amount: str, quantity: str) -> Decimal:
    return PerUnit(Decimal(unit_amount)).charge(Usage(Decimal(quantity))).amount


@pytest.mark.parametrize(
    ("unit_amount", "quantity", "expected"),
    [
        ("1500", "3", "4500"),  # 3 seats x 15.00 USD = 45.00 USD
        ("1500", "0", "0"),  # no seats, nothing billed
        ("1000", "2.5", "2500"),  # 2.5 hours x 10.00 USD = 25.00 USD
        ("0.25", "1234", "308.5"),  # 1234 messages x 0.25 cent = 308.5 cents
        ("0.123456789012", "3", "0.370370367036"),  # 12 places kept exactly
    ],
)
def test_per_unit_multiplies_exactly(unit_amount: str, quantity: str, expected: str) -> None:
    assert amount(unit_amount, quantity) == Decimal(expected)


def test_the_charge_carries_the_unit_price_and_quantity() -> None:
    charge = PerUnit(Decimal("1500")).charge(Usage(Decimal("3")))

    assert charge.unit_amount == Decimal("1500")
    assert charge.quantity == Decimal("3")


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("1234", 309),  # 1234 x 0.25 = 308.5  -> 309 (exactly half: up)
        ("1233", 308),  # 1233 x 0.25 = 308.25 -> 308
        ("1235", 309),  # 1235 x 0.25 = 308.75 -> 309
    ],
)
def test_a_sub_cent_unit_price_rounds_half_up_on_the_line(quantity: str, expected: int) -> None:
    assert round_minor(amount("0.25", quantity)) == expected


def test_yen_lines_round_to_whole_yen() -> None:
    # JPY exponent 0: 7 x 12.5 yen = 87.5 yen -> 88 yen.
    assert round_minor(amount("12.5", "7")) == 88


def test_dinar_lines_round_to_whole_fils() -> None:
    # KWD exponent 3: 3 x 1234.5 fils = 3703.5 fils -> 3704 fils = 3.704 KWD.
    assert round_minor(amount("1234.5", "3")) == 3704


def test_a_negative_unit_amount_is_rejected_at_its_field() -> None:
    assert violation_fields(PerUnit(Decimal("-0.01"))) == ["price.unit_amount"]
