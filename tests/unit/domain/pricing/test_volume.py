"""Volume tiers: every unit at the tier the whole quantity falls in, plus that tier's flat."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.domain.errors import InvalidArgument, Violations
from billing.domain.money import round_minor
from billing.domain.pricing import Tier, TierLine, Usage, Volume


def violation_fields(model: Volume) -> list[str]:
    errors = Violations()
    model.validate(errors, "price")
    try:
        errors.raise_if_any()
    except InvalidArgument as error:
        return [v.field for v in error.violations]
    return []


def tier(up_to: str | None, unit: str = "0", flat: str = "0") -> Tier:
    return Tier(
        up_to=None if up_to is None else Decimal(up_to),
        unit_amount=Decimal(unit),
        flat_amount=Decimal(flat),
    )


# 1-10 units: 1.00 USD each + 5.00; 11-20: 0.80 each + 2.00; 21+: 0.50 each.
PRICE = Volume((tier("10", "100", "500"), tier("20", "80", "200"), tier(None, "50")))


def amount(model: Volume, quantity: str) -> Decimal:
    return model.charge(Usage(Decimal(quantity))).amount


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("0", "500"),  # 0 x 100 + 500: the first tier's flat is still billed
        ("1", "600"),  # 1 x 100 + 500
        ("10", "1500"),  # on the bound, tier 1: 10 x 100 + 500
        ("10.5", "1040"),  # tier 2: 10.5 x 80 + 200 = 840 + 200
        ("11", "1080"),  # tier 2: 11 x 80 + 200 = 880 + 200
        ("20", "1800"),  # tier 2: 20 x 80 + 200 = 1600 + 200
        ("21", "1050"),  # open tier: 21 x 50
        ("35", "1750"),  # open tier: 35 x 50
    ],
)
def test_volume_prices_every_unit_at_the_reached_tier(quantity: str, expected: str) -> None:
    assert amount(PRICE, quantity) == Decimal(expected)


def test_the_single_tier_line_names_the_tier_reached() -> None:
    charge = PRICE.charge(Usage(Decimal(11)))

    assert charge.tiers == (
        TierLine(1, Decimal(10), Decimal(20), Decimal(11), Decimal(80), Decimal(200), Decimal(1080)),
    )
    assert charge.unit_amount == Decimal(80)
    assert charge.quantity == Decimal(11)


def test_zero_quantity_lands_in_the_first_tier() -> None:
    charge = PRICE.charge(Usage(Decimal(0)))

    assert charge.tiers == (
        TierLine(0, Decimal(0), Decimal(10), Decimal(0), Decimal(100), Decimal(500), Decimal(500)),
    )


def test_the_open_tier_line_has_no_upper_bound() -> None:
    (line,) = PRICE.charge(Usage(Decimal(35))).tiers

    assert (line.index, line.after, line.up_to) == (2, Decimal(20), None)


def test_a_cheaper_higher_tier_makes_more_units_cost_less() -> None:
    # The volume "cliff" (Stripe: "the total might decrease"): it is the rule, not a bug.
    model = Volume((tier("10", "5"), tier(None, "3")))

    assert amount(model, "10") == Decimal("50")  # 10 x 5
    assert amount(model, "11") == Decimal("33")  # 11 x 3: one more unit, 17 less


def test_a_lower_flat_amount_in_a_higher_tier_is_also_a_cliff() -> None:
    model = Volume((tier("10", "1", "100"), tier(None, "1", "0")))

    assert amount(model, "10") == Decimal("110")  # 10 x 1 + 100
    assert amount(model, "11") == Decimal("11")  # 11 x 1 + 0


# 0.25 cent per unit up to 100, 0.125 cent per unit above.
SUB_CENT = Volume((tier("100", "0.25"), tier(None, "0.125")))


@pytest.mark.parametrize(
    ("quantity", "exact", "rounded"),
    [
        ("1", "0.25", 0),  # 0.25 -> 0
        ("2", "0.5", 1),  # exactly half a cent -> 1
        ("3", "0.75", 1),
        ("104", "13", 13),  # 104 x 0.125
        ("108", "13.5", 14),  # 108 x 0.125 = 13.5 -> 14
    ],
)
def test_the_line_rounds_half_up_to_a_whole_cent(quantity: str, exact: str, rounded: int) -> None:
    charge = SUB_CENT.charge(Usage(Decimal(quantity)))

    assert charge.amount == Decimal(exact)
    assert round_minor(charge.amount) == rounded


def test_yen_volume_lines_round_to_whole_yen() -> None:
    # JPY exponent 0: 2.5 yen each up to 100, 1.5 yen each above.
    model = Volume((tier("100", "2.5"), tier(None, "1.5")))

    assert round_minor(amount(model, "3")) == 8  # 7.5 yen -> 8 yen
    assert round_minor(amount(model, "101")) == 152  # 151.5 yen -> 152 yen


def test_dinar_volume_lines_round_to_whole_fils() -> None:
    # KWD exponent 3: 0.5 fils each up to 1000 units.
    model = Volume((tier("1000", "0.5"), tier(None, "0.25")))

    assert round_minor(amount(model, "7")) == 4  # 3.5 fils -> 4 fils = 0.004 KWD
    assert round_minor(amount(model, "1002")) == 251  # 250.5 fils -> 251 fils = 0.251 KWD


@pytest.mark.parametrize(
    ("tiers", "fields"),
    [
        pytest.param((), ["price.tiers"], id="empty"),
        pytest.param((tier("20"), tier("10"), tier(None)), ["price.tiers[1].up_to"], id="unsorted"),
        pytest.param((tier("10"), tier("10"), tier(None)), ["price.tiers[1].up_to"], id="equal"),
        pytest.param((tier("10"), tier("20")), ["price.tiers[1].up_to"], id="no open last tier"),
        pytest.param((tier(None), tier("10"), tier(None)), ["price.tiers[0].up_to"], id="open tier first"),
        pytest.param(
            (tier(None, "-1", "-1"),),
            ["price.tiers[0].unit_amount", "price.tiers[0].flat_amount"],
            id="negative amounts",
        ),
    ],
)
def test_bad_tiers_are_named_by_their_field_path(tiers: tuple[Tier, ...], fields: list[str]) -> None:
    assert violation_fields(Volume(tiers)) == fields
