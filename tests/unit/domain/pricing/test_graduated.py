"""Graduated tiers: each unit priced by the tier it falls in; up_to inclusive (Stripe)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.domain.errors import InvalidArgument, Violations
from billing.domain.money import exact_sum, round_minor
from billing.domain.pricing import Graduated, Tier, TierLine, Usage


def violation_fields(model: Graduated) -> list[str]:
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


# Units 1-10 at 1.00 USD plus a 5.00 USD base fee; 11-20 at 0.80 plus 2.00 on entering; 21+ at 0.50.
PRICE = Graduated((tier("10", "100", "500"), tier("20", "80", "200"), tier(None, "50")))


def amount(model: Graduated, quantity: str) -> Decimal:
    return model.charge(Usage(Decimal(quantity))).amount


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("0", "500"),  # nothing used: only the first tier's flat 500
        ("1", "600"),  # 1 x 100 + 500
        ("10", "1500"),  # on the bound, still tier 1: 10 x 100 + 500 (tier 2's flat not billed)
        ("10.5", "1740"),  # 1500 + 0.5 x 80 + 200
        ("11", "1780"),  # 1500 + 1 x 80 + 200
        ("20", "2500"),  # 1500 + 10 x 80 + 200
        ("21", "2550"),  # 2500 + 1 x 50
        ("35", "3250"),  # 2500 + 15 x 50 in the open tier
        ("1000000", "50001500"),  # 2500 + 999980 x 50 = 2500 + 49999000
    ],
)
def test_graduated_prices_each_unit_in_its_own_tier(quantity: str, expected: str) -> None:
    assert amount(PRICE, quantity) == Decimal(expected)


def test_zero_quantity_still_bills_the_first_tiers_flat_amount() -> None:
    charge = PRICE.charge(Usage(Decimal(0)))

    assert charge.tiers == (
        TierLine(0, Decimal(0), Decimal(10), Decimal(0), Decimal(100), Decimal(500), Decimal(500)),
    )


def test_exactly_on_a_bound_the_next_tier_is_not_entered() -> None:
    charge = PRICE.charge(Usage(Decimal(10)))

    assert [line.index for line in charge.tiers] == [0]


def test_the_tier_lines_show_the_breakdown_a_person_can_recompute() -> None:
    charge = PRICE.charge(Usage(Decimal(35)))

    assert charge.tiers == (
        # index, after, up_to, quantity, unit, flat, amount
        TierLine(0, Decimal(0), Decimal(10), Decimal(10), Decimal(100), Decimal(500), Decimal(1500)),
        TierLine(1, Decimal(10), Decimal(20), Decimal(10), Decimal(80), Decimal(200), Decimal(1000)),
        TierLine(2, Decimal(20), None, Decimal(15), Decimal(50), Decimal(0), Decimal(750)),
    )
    assert exact_sum(line.amount for line in charge.tiers) == charge.amount
    assert charge.unit_amount is None
    assert charge.quantity == Decimal(35)


def test_a_single_open_tier_is_per_unit_plus_a_base_fee() -> None:
    model = Graduated((tier(None, "25", "1000"),))

    assert amount(model, "0") == Decimal("1000")  # base fee only
    assert amount(model, "4") == Decimal("1100")  # 4 x 25 + 1000


# Sub-cent unit prices: 0.25 cent for units 1-100, 0.125 cent above.
SUB_CENT = Graduated((tier("100", "0.25"), tier(None, "0.125")))


@pytest.mark.parametrize(
    ("quantity", "exact", "rounded"),
    [
        ("102", "25.25", 25),  # 100 x 0.25 + 2 x 0.125 = 25 + 0.25
        ("103", "25.375", 25),  # 25 + 0.375
        ("104", "25.5", 26),  # 25 + 0.5: exactly half a cent -> up
        ("105", "25.625", 26),
    ],
)
def test_the_line_rounds_half_up_to_a_whole_cent(quantity: str, exact: str, rounded: int) -> None:
    charge = SUB_CENT.charge(Usage(Decimal(quantity)))

    assert charge.amount == Decimal(exact)
    assert round_minor(charge.amount) == rounded


def test_tiers_are_summed_exactly_and_rounded_once_per_line_not_per_tier() -> None:
    model = Graduated((tier("1", "0.5"), tier(None, "0.25")))

    charge = model.charge(Usage(Decimal(3)))

    assert [line.amount for line in charge.tiers] == [Decimal("0.5"), Decimal("0.5")]
    # Rounding per tier would bill 1 + 1 = 2 cents; the line is 0.5 + 0.5 = 1.0 -> 1 cent.
    assert round_minor(charge.amount) == 1


def test_yen_graduated_lines_round_to_whole_yen() -> None:
    # JPY exponent 0: 1.5 yen for units 1-1000, 1 yen above.
    model = Graduated((tier("1000", "1.5"), tier(None, "1")))

    assert amount(model, "1001") == Decimal("1501")  # 1000 x 1.5 + 1 x 1
    assert round_minor(amount(model, "3")) == 5  # 3 x 1.5 = 4.5 yen -> 5 yen


def test_dinar_graduated_lines_round_to_whole_fils() -> None:
    # KWD exponent 3: 12.5 fils per unit up to 10, 10 fils above.
    model = Graduated((tier("10", "12.5"), tier(None, "10")))

    assert round_minor(amount(model, "3")) == 38  # 37.5 fils -> 38 fils = 0.038 KWD
    assert round_minor(amount(model, "11")) == 135  # 125 + 10 = 135 fils = 0.135 KWD


def test_valid_tiers_have_no_violations() -> None:
    assert violation_fields(PRICE) == []


@pytest.mark.parametrize(
    ("tiers", "fields"),
    [
        pytest.param((), ["price.tiers"], id="empty"),
        pytest.param((tier("20"), tier("10"), tier(None)), ["price.tiers[1].up_to"], id="unsorted"),
        pytest.param((tier("10"), tier("10"), tier(None)), ["price.tiers[1].up_to"], id="equal"),
        pytest.param((tier("10"), tier("20")), ["price.tiers[1].up_to"], id="no open last tier"),
        pytest.param((tier(None), tier(None)), ["price.tiers[0].up_to"], id="two open tiers"),
        pytest.param(
            (tier("10"), tier(None), tier("20")),
            ["price.tiers[1].up_to", "price.tiers[2].up_to"],
            id="open tier not last",
        ),
        pytest.param((tier("0"), tier(None)), ["price.tiers[0].up_to"], id="zero bound"),
        pytest.param((tier("-5"), tier(None)), ["price.tiers[0].up_to"], id="negative bound"),
        pytest.param(
            (tier("10", "-1", "-5"), tier(None)),
            ["price.tiers[0].unit_amount", "price.tiers[0].flat_amount"],
            id="negative amounts",
        ),
    ],
)
def test_bad_tiers_are_named_by_their_field_path(tiers: tuple[Tier, ...], fields: list[str]) -> None:
    assert violation_fields(Graduated(tiers)) == fields


def test_every_bad_tier_is_reported_at_once() -> None:
    model = Graduated((tier("20"), tier("10", "-1"), tier("30", flat="-2")))

    assert violation_fields(model) == [
        "price.tiers[1].up_to",  # 10 is not above 20
        "price.tiers[2].up_to",  # the last tier must be open
        "price.tiers[1].unit_amount",
        "price.tiers[2].flat_amount",
    ]


def test_the_violation_says_what_is_wrong() -> None:
    errors = Violations()
    Graduated((tier("10"), tier("20"))).validate(errors, "price")

    with pytest.raises(InvalidArgument) as caught:
        errors.raise_if_any()

    (violation,) = caught.value.violations
    assert "open" in violation.description
