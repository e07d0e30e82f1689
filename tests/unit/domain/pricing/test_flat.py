"""Flat fee: one amount per period, whatever the quantity."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.domain.errors import InvalidArgument, Violations
from billing.domain.money import round_minor
from billing.domain.pricing import Flat, Usage


def violation_fields(model: Flat) -> list[str]:
    errors = Violations()
    model.validate(errors, "price")
    try:
        errors.raise_if_any()
    except InvalidArgument as error:
        return [v.field for v in error.violations]
    return []


@pytest.mark.parametrize("quantity", ["0", "1", "1000.5"])
def test_a_flat_fee_bills_the_same_amount_whatever_the_quantity(quantity: str) -> None:
    charge = Flat(Decimal("4900")).charge(Usage(Decimal(quantity)))

    assert charge.amount == Decimal("4900")  # 49.00 USD, a platform fee
    assert charge.unit_amount == Decimal("4900")
    assert charge.quantity == Decimal(quantity)
    assert charge.tiers == ()


def test_a_fractional_flat_fee_rounds_half_up_once_on_the_line() -> None:
    charge = Flat(Decimal("1234.5")).charge(Usage(Decimal(1)))

    assert charge.amount == Decimal("1234.5")  # kept unrounded
    assert round_minor(charge.amount) == 1235  # 1234.5 -> 1235 cents


def test_a_yen_flat_fee_rounds_to_whole_yen() -> None:
    # JPY has exponent 0: the minor unit is the yen, so 980.5 yen rounds to 981 yen.
    assert round_minor(Flat(Decimal("980.5")).charge(Usage(Decimal(0))).amount) == 981


def test_a_dinar_flat_fee_rounds_to_whole_fils() -> None:
    # KWD has exponent 3: 12.3455 fils (0.0123455 KWD) rounds to 12 fils = 0.012 KWD.
    assert round_minor(Flat(Decimal("12.3455")).charge(Usage(Decimal(0))).amount) == 12


def test_a_negative_flat_fee_is_rejected_at_its_field() -> None:
    assert violation_fields(Flat(Decimal("-1"))) == ["price.amount"]


def test_a_zero_flat_fee_is_valid() -> None:
    assert violation_fields(Flat(Decimal(0))) == []
