"""Graduated percentage: each slice of the period's transaction volume pays its tier's rate."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.domain.errors import InvalidArgument, Violations
from billing.domain.money import exact_sum, round_minor
from billing.domain.pricing import GraduatedPercentage, PercentageTier, TierLine, Usage


def violation_fields(model: GraduatedPercentage) -> list[str]:
    errors = Violations()
    model.validate(errors, "price")
    try:
        errors.raise_if_any()
    except InvalidArgument as error:
        return [v.field for v in error.violations]
    return []


def tier(up_to: str | None, rate: str, flat: str = "0") -> PercentageTier:
    return PercentageTier(
        up_to=None if up_to is None else Decimal(up_to), rate=Decimal(rate), flat_amount=Decimal(flat)
    )


# Volume in cents. 1 % up to 1,000.00 USD plus a 10.00 base fee; 0.5 % up to 10,000.00 plus
# 20.00 on entering; 0.25 % above.
PRICE = GraduatedPercentage((tier("100000", "1", "1000"), tier("1000000", "0.5", "2000"), tier(None, "0.25")))


def amount(model: GraduatedPercentage, volume: str) -> Decimal:
    return model.charge(Usage(Decimal(volume))).amount


@pytest.mark.parametrize(
    ("volume", "expected"),
    [
        ("0", "1000"),  # no volume: the first tier's flat fee only
        ("50000", "1500"),  # 50000 x 1 % = 500, + 1000
        ("100000", "2000"),  # on the bound: 1000 + 1000; tier 2 not entered
        ("100001", "4000.005"),  # 2000 + 1 x 0.5 % + 2000
        ("1000000", "8500"),  # 2000 + 900000 x 0.5 % (4500) + 2000
        ("2000000", "11000"),  # 8500 + 1000000 x 0.25 % (2500) in the open tier
    ],
)
def test_each_slice_pays_its_tiers_rate(volume: str, expected: str) -> None:
    assert amount(PRICE, volume) == Decimal(expected)


def test_the_tier_lines_carry_the_slices_and_their_rates() -> None:
    charge = PRICE.charge(Usage(Decimal(2000000)))

    # index, after, up_to, slice, rate (in the unit_amount column), flat, amount
    assert charge.tiers == (
        TierLine(0, Decimal(0), Decimal(100000), Decimal(100000), Decimal(1), Decimal(1000), Decimal(2000)),
        TierLine(
            1,
            Decimal(100000),
            Decimal(1000000),
            Decimal(900000),
            Decimal("0.5"),
            Decimal(2000),
            Decimal(6500),
        ),
        TierLine(2, Decimal(1000000), None, Decimal(1000000), Decimal("0.25"), Decimal(0), Decimal(2500)),
    )
    assert exact_sum(line.amount for line in charge.tiers) == charge.amount
    assert charge.unit_amount is None


def test_zero_volume_has_one_line_with_the_first_flat_fee() -> None:
    (line,) = PRICE.charge(Usage(Decimal(0))).tiers

    assert (line.index, line.quantity, line.amount) == (0, Decimal(0), Decimal(1000))


@pytest.mark.parametrize(
    ("volume", "exact", "rounded"),
    [
        ("100100", "4000.5", 4001),  # 2000 + 100 x 0.5 % (0.5) + 2000: half a cent -> up
        ("100099", "4000.495", 4000),
        ("150", "1001.5", 1002),  # 150 x 1 % = 1.5, + 1000
    ],
)
def test_the_line_rounds_half_up_once(volume: str, exact: str, rounded: int) -> None:
    charge = PRICE.charge(Usage(Decimal(volume)))

    assert charge.amount == Decimal(exact)
    assert round_minor(charge.amount) == rounded


def test_fractional_volumes_are_sliced_exactly() -> None:
    # 100000.5 cents: 100000 in tier 1, 0.5 in tier 2 at 0.5 % = 0.0025.
    assert amount(PRICE, "100000.5") == Decimal("4000.0025")


def test_yen_volumes_round_to_whole_yen() -> None:
    # JPY exponent 0: 3 % up to 10000 yen, 1.5 % above.
    model = GraduatedPercentage((tier("10000", "3"), tier(None, "1.5")))

    assert amount(model, "10100") == Decimal("301.5")  # 300 + 100 x 1.5 % = 1.5
    assert round_minor(amount(model, "10100")) == 302


def test_dinar_volumes_round_to_whole_fils() -> None:
    # KWD exponent 3: 0.5 % up to 100000 fils (100 KWD), 0.25 % above.
    model = GraduatedPercentage((tier("100000", "0.5"), tier(None, "0.25")))

    assert round_minor(amount(model, "100")) == 1  # 0.5 fils -> 1 fil
    assert round_minor(amount(model, "100200")) == 501  # 500 + 0.5 = 500.5 -> 501 fils


def test_valid_tiers_have_no_violations() -> None:
    assert violation_fields(PRICE) == []


@pytest.mark.parametrize(
    ("tiers", "fields"),
    [
        pytest.param((), ["price.tiers"], id="empty"),
        pytest.param(
            (tier("100", "1"), tier("50", "1"), tier(None, "1")),
            ["price.tiers[1].up_to"],
            id="unsorted",
        ),
        pytest.param((tier("100", "1"), tier("200", "1")), ["price.tiers[1].up_to"], id="no open"),
        pytest.param((tier("100", "1"), tier(None, "100.5")), ["price.tiers[1].rate"], id="rate above 100"),
        pytest.param((tier(None, "-0.1"),), ["price.tiers[0].rate"], id="negative rate"),
        pytest.param(
            (tier("100", "1", "-1"), tier(None, "1")),
            ["price.tiers[0].flat_amount"],
            id="negative flat",
        ),
    ],
)
def test_bad_tiers_are_named_by_their_field_path(
    tiers: tuple[PercentageTier, ...], fields: list[str]
) -> None:
    assert violation_fields(GraduatedPercentage(tiers)) == fields
