"""Percentage of transaction value: rate + fixed fee per transaction, clamped per transaction."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from billing.domain.errors import InvalidArgument, Violations
from billing.domain.money import round_minor
from billing.domain.pricing import Percentage, Usage


def violation_fields(model: Percentage) -> list[str]:
    errors = Violations()
    model.validate(errors, "price")
    try:
        errors.raise_if_any()
    except InvalidArgument as error:
        return [v.field for v in error.violations]
    return []


def d(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def price(
    rate: str,
    fixed: str = "0",
    minimum: str | None = None,
    maximum: str | None = None,
    free: int = 0,
) -> Percentage:
    return Percentage(
        rate=Decimal(rate),
        fixed_amount=Decimal(fixed),
        min_per_transaction=d(minimum),
        max_per_transaction=d(maximum),
        free_transactions=free,
    )


def on(model: Percentage, *values: str) -> Decimal:
    """The charge for these explicit transaction values (minor units)."""
    transactions = tuple(Decimal(v) for v in values)
    total = sum(transactions, Decimal(0))
    return model.charge(Usage(quantity=total, transactions=transactions)).amount


def estimate(model: Percentage, quantity: str, count: int) -> Decimal:
    """The quote's estimate: ``count`` transactions of equal value totalling ``quantity``."""
    return model.charge(Usage(quantity=Decimal(quantity), transaction_count=count)).amount


CARD = price("2.9", fixed="30")  # 2.9 % + 0.30 USD per transaction


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (("10000",), "320"),  # 10000 x 2.9 % = 290, + 30
        (("10000", "5000"), "495"),  # 320 + (145 + 30)
        (("0",), "30"),  # a zero-value transaction still pays the fixed fee
        ((), "0"),  # no transactions, nothing billed
        (("1234",), "65.786"),  # 1234 x 0.029 = 35.786, + 30
    ],
)
def test_each_transaction_pays_the_rate_plus_the_fixed_fee(values: tuple[str, ...], expected: str) -> None:
    assert on(CARD, *values) == Decimal(expected)


def test_the_charge_has_no_unit_amount_and_keeps_the_total_value_as_quantity() -> None:
    charge = CARD.charge(Usage(quantity=Decimal(15000), transactions=(Decimal(10000), Decimal(5000))))

    assert charge.unit_amount is None
    assert charge.quantity == Decimal(15000)


def test_a_minimum_lifts_each_small_transaction() -> None:
    model = price("1", minimum="50")

    assert on(model, "1000") == Decimal("50")  # 1 % of 1000 = 10 -> raised to 50
    assert on(model, "10000") == Decimal("100")  # 100 is above the minimum
    assert on(model, "1000", "10000") == Decimal("150")  # per transaction, not per period


def test_a_maximum_caps_each_large_transaction() -> None:
    model = price("1", maximum="500")

    assert on(model, "100000") == Decimal("500")  # 1000 -> capped at 500
    assert on(model, "100000", "20000") == Decimal("700")  # 500 + 200


def test_the_clamp_applies_to_the_rate_and_fixed_fee_together() -> None:
    model = price("1", fixed="20", minimum="50", maximum="100")

    assert on(model, "10000") == Decimal("100")  # 100 + 20 = 120 -> capped at 100
    assert on(model, "1000") == Decimal("50")  # 10 + 20 = 30 -> raised to 50
    assert on(model, "5000") == Decimal("70")  # 50 + 20 = 70, inside the bounds


def test_the_first_free_transactions_are_not_charged_at_all() -> None:
    model = price("10", fixed="5", free=2)

    # Only the third transaction is billed: 3000 x 10 % + 5 = 305.
    assert on(model, "1000", "2000", "3000") == Decimal("305")
    # Order matters: the free ones are the first in the period, not the cheapest.
    assert on(model, "3000", "2000", "1000") == Decimal("105")  # 1000 x 10 % + 5


def test_more_free_transactions_than_transactions_bills_nothing() -> None:
    assert on(price("10", fixed="5", minimum="100", free=5), "1000", "2000") == Decimal("0")


def test_an_equal_split_estimate_matches_explicit_transactions_without_caps() -> None:
    # 30000 over 3 transactions: 10000 each -> 320 each -> 960.
    assert estimate(CARD, "30000", 3) == Decimal("960")
    # Any split of 30000 into 3 gives the same while no minimum or maximum bites:
    # 5000 -> 175, 5000 -> 175, 20000 -> 610; 175 + 175 + 610 = 960.
    assert on(CARD, "5000", "5000", "20000") == Decimal("960")


def test_an_equal_split_estimate_can_differ_once_a_minimum_bites() -> None:
    model = price("2.9", fixed="30", minimum="200")

    assert estimate(model, "30000", 3) == Decimal("960")  # 320 each, above the minimum
    assert on(model, "5000", "5000", "20000") == Decimal("1010")  # 200 + 200 + 610


def test_an_estimate_without_a_count_assumes_one_transaction() -> None:
    assert estimate(CARD, "10000", 0) == Decimal("320")  # one 10000 transaction


def test_an_estimate_of_nothing_bills_no_fixed_fee() -> None:
    assert estimate(CARD, "0", 0) == Decimal("0")


def test_an_estimate_leaves_out_the_free_transactions() -> None:
    # 3 transactions of 10000, the first free: 2 x (10000 x 10 % + 5) = 2 x 1005.
    assert estimate(price("10", fixed="5", free=1), "30000", 3) == Decimal("2010")
    assert estimate(price("10", fixed="5", free=3), "30000", 3) == Decimal("0")


def test_a_non_terminating_split_is_carried_far_below_a_cent() -> None:
    model = price("10", free=1)

    # 100 cents over 3 transactions: 100/3 each x 10 % = 10/3 cents each; 2 billed -> 20/3.
    charge = estimate(model, "100", 3)

    assert abs(Fraction(charge) - Fraction(20, 3)) < Fraction(1, 10**29)
    assert round_minor(charge) == 7  # 6.666... -> 7 cents
    # Without free transactions the thirds add up exactly: 3 x 10/3 = 10 cents.
    assert estimate(price("10"), "100", 3) == Decimal("10")


@pytest.mark.parametrize(
    ("values", "exact", "rounded"),
    [
        (("100",), "2.5", 3),  # 100 x 2.5 % = 2.5 cents -> 3 (half-up)
        (("60",), "1.5", 2),  # 1.5 -> 2
        (("20", "20"), "1.0", 1),  # 0.5 + 0.5 summed exactly, then rounded once -> 1 (not 2)
        (("99",), "2.475", 2),
    ],
)
def test_the_line_rounds_half_up_once(values: tuple[str, ...], exact: str, rounded: int) -> None:
    charge = on(price("2.5"), *values)

    assert charge == Decimal(exact)
    assert round_minor(charge) == rounded


def test_yen_percentages_round_to_whole_yen() -> None:
    # JPY exponent 0: 3.6 % of 1375 yen = 49.5 yen -> 50 yen; of 1250 yen = 45 yen exactly.
    assert round_minor(on(price("3.6"), "1375")) == 50
    assert on(price("3.6"), "1250") == Decimal("45")


def test_dinar_percentages_round_to_whole_fils() -> None:
    # KWD exponent 3: 1.5 % of 1100 fils (1.100 KWD) = 16.5 fils -> 17 fils = 0.017 KWD.
    assert round_minor(on(price("1.5"), "1100")) == 17


@pytest.mark.parametrize("rate", ["0", "100", "0.000000000001"])
def test_rates_from_0_to_100_percent_are_valid(rate: str) -> None:
    assert violation_fields(price(rate)) == []


@pytest.mark.parametrize("rate", ["100.01", "101", "-1"])
def test_a_rate_outside_0_to_100_is_rejected(rate: str) -> None:
    assert violation_fields(price(rate)) == ["price.rate"]


def test_a_minimum_above_the_maximum_is_rejected_at_the_maximum() -> None:
    assert violation_fields(price("1", minimum="100", maximum="50")) == ["price.max_per_transaction"]


def test_a_minimum_equal_to_the_maximum_is_a_fixed_fee_per_transaction() -> None:
    model = price("1", minimum="75", maximum="75")

    assert violation_fields(model) == []
    assert on(model, "1", "1000000") == Decimal("150")


def test_every_bad_percentage_field_is_named() -> None:
    model = price("101", fixed="-1", minimum="-1", maximum="-2", free=-1)

    assert violation_fields(model) == [
        "price.rate",
        "price.fixed_amount",
        "price.min_per_transaction",
        "price.max_per_transaction",
        "price.free_transactions",
        "price.max_per_transaction",  # -1 > -2: also below the minimum
    ]
