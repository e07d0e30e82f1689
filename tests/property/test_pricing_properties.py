"""Properties of the pricing core that must hold for every valid price and usage.

NOTE: volume pricing is not monotone in general: a higher tier with a lower unit (or flat) amount
bills more units for less (10 x 5 = 50, 11 x 3 = 33; see tests/unit/domain/pricing/test_volume.py).
Monotonicity is asserted for volume only when unit and flat amounts never decrease tier to tier.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.domain.errors import Violations
from billing.domain.money import EXACT, allocate, exact_sum, round_minor
from billing.domain.pricing import (
    Graduated,
    GraduatedPercentage,
    Package,
    PackageRounding,
    Percentage,
    PercentageTier,
    PerUnit,
    Tier,
    Usage,
    Volume,
)

PROPERTY = settings(max_examples=300, deadline=None)

amounts = st.decimals(min_value=0, max_value=10_000, places=4, allow_nan=False, allow_infinity=False)
quantities = st.decimals(min_value=0, max_value=100_000, places=3, allow_nan=False, allow_infinity=False)
rates = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False)
bounds = st.decimals(
    min_value=Decimal("0.001"), max_value=50_000, places=3, allow_nan=False, allow_infinity=False
)


@st.composite
def tier_lists(draw: st.DrawFn, non_decreasing: bool = False) -> tuple[Tier, ...]:
    """Valid tiers: sorted distinct positive bounds, then one open tier; amounts >= 0."""
    ups: list[Decimal | None] = [*sorted(draw(st.lists(bounds, max_size=4, unique=True))), None]
    units = draw(st.lists(amounts, min_size=len(ups), max_size=len(ups)))
    flats = draw(st.lists(amounts, min_size=len(ups), max_size=len(ups)))
    if non_decreasing:
        units, flats = sorted(units), sorted(flats)
    return tuple(Tier(up, unit, flat) for up, unit, flat in zip(ups, units, flats, strict=True))


@st.composite
def percentage_tier_lists(draw: st.DrawFn) -> tuple[PercentageTier, ...]:
    ups: list[Decimal | None] = [*sorted(draw(st.lists(bounds, max_size=4, unique=True))), None]
    return tuple(PercentageTier(up, draw(rates), draw(amounts)) for up in ups)


@st.composite
def percentages(draw: st.DrawFn) -> Percentage:
    low, high = draw(st.one_of(st.none(), amounts)), draw(st.one_of(st.none(), amounts))
    if low is not None and high is not None and low > high:
        low, high = high, low
    return Percentage(
        rate=draw(rates),
        fixed_amount=draw(amounts),
        min_per_transaction=low,
        max_per_transaction=high,
        free_transactions=draw(st.integers(0, 3)),
    )


def is_valid(model: Graduated | Volume | GraduatedPercentage | Percentage) -> bool:
    errors = Violations()
    model.validate(errors, "price")
    return not errors


def charged(model: Graduated | Volume | GraduatedPercentage | Package, quantity: Decimal) -> Decimal:
    return model.charge(Usage(quantity)).amount


@PROPERTY
@given(tier_lists(), quantities, quantities)
def test_graduated_charges_never_decrease_with_quantity(
    tiers: tuple[Tier, ...], a: Decimal, b: Decimal
) -> None:
    model = Graduated(tiers)
    assert is_valid(model)
    low, high = min(a, b), max(a, b)

    assert charged(model, low) <= charged(model, high)


@PROPERTY
@given(tier_lists(non_decreasing=True), quantities, quantities)
def test_volume_charges_never_decrease_when_tier_amounts_never_decrease(
    tiers: tuple[Tier, ...], a: Decimal, b: Decimal
) -> None:
    model = Volume(tiers)
    assert is_valid(model)
    low, high = min(a, b), max(a, b)

    assert charged(model, low) <= charged(model, high)


@PROPERTY
@given(tier_lists(), quantities)
def test_a_graduated_total_is_the_sum_of_its_tier_lines(tiers: tuple[Tier, ...], quantity: Decimal) -> None:
    charge = Graduated(tiers).charge(Usage(quantity))

    assert charge.amount == exact_sum(line.amount for line in charge.tiers)
    for line in charge.tiers:
        expected = EXACT.add(EXACT.multiply(line.quantity, line.unit_amount), line.flat_amount)
        assert line.amount == expected


@PROPERTY
@given(tier_lists(), quantities)
def test_graduated_tier_lines_partition_the_quantity(tiers: tuple[Tier, ...], quantity: Decimal) -> None:
    lines = Graduated(tiers).charge(Usage(quantity)).tiers

    assert exact_sum(line.quantity for line in lines) == quantity
    assert [line.index for line in lines] == list(range(len(lines)))
    assert lines[0].after == 0
    for previous, line in pairwise(lines):
        assert line.after == previous.up_to  # contiguous: (after, up_to] follow each other
        assert previous.quantity == previous.up_to - previous.after  # inner tiers are full
    last = lines[-1]
    assert last.up_to is None or quantity <= last.up_to


@PROPERTY
@given(tier_lists(), quantities)
def test_volume_bills_the_whole_quantity_in_the_one_tier_that_contains_it(
    tiers: tuple[Tier, ...], quantity: Decimal
) -> None:
    charge = Volume(tiers).charge(Usage(quantity))
    (line,) = charge.tiers

    assert line.quantity == quantity
    assert line.after < quantity or quantity == 0 == line.index
    assert line.up_to is None or quantity <= line.up_to
    assert charge.amount == EXACT.add(EXACT.multiply(quantity, line.unit_amount), line.flat_amount)


@PROPERTY
@given(percentage_tier_lists(), quantities, quantities)
def test_graduated_percentage_never_decreases_and_sums_its_lines(
    tiers: tuple[PercentageTier, ...], a: Decimal, b: Decimal
) -> None:
    model = GraduatedPercentage(tiers)
    assert is_valid(model)
    low, high = min(a, b), max(a, b)
    charge = model.charge(Usage(high))

    assert charged(model, low) <= charge.amount
    assert charge.amount == exact_sum(line.amount for line in charge.tiers)
    assert exact_sum(line.quantity for line in charge.tiers) == high


@PROPERTY
@given(
    amounts,
    st.decimals(min_value=Decimal("0.001"), max_value=1000, places=3),
    st.sampled_from(PackageRounding),
    amounts,
    quantities,
    quantities,
)
def test_package_charges_never_decrease_with_quantity(
    amount: Decimal,
    size: Decimal,
    rounding: PackageRounding,
    free: Decimal,
    a: Decimal,
    b: Decimal,
) -> None:
    model = Package(package_amount=amount, package_size=size, rounding=rounding, free_units=free)
    low, high = min(a, b), max(a, b)

    assert charged(model, low) <= charged(model, high)


@PROPERTY
@given(st.decimals(min_value=-(10**15), max_value=10**15, places=12, allow_nan=False, allow_infinity=False))
def test_rounding_moves_an_amount_by_at_most_half_a_minor_unit(amount: Decimal) -> None:
    rounded = round_minor(amount)
    moved = abs(Fraction(rounded) - Fraction(amount))

    assert moved <= Fraction(1, 2)
    if moved == Fraction(1, 2):
        assert abs(rounded) > abs(amount)  # an exact half goes away from zero


@PROPERTY
@given(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=12),
)
def test_allocate_conserves_the_total_and_stays_within_one_unit_of_the_exact_share(
    total: int, weights: list[int]
) -> None:
    parts = allocate(total, weights)

    assert sum(parts) == total
    effective = weights if sum(weights) else [1] * len(weights)
    whole = sum(effective)
    for part, weight in zip(parts, effective, strict=True):
        assert abs(Fraction(part) - Fraction(total * weight, whole)) < 1
        assert part * total >= 0  # never the opposite sign of the total
        if weight == 0:
            assert part == 0


@PROPERTY
@given(percentages(), quantities, quantities)
def test_a_percentage_fee_never_decreases_with_the_transaction_value(
    model: Percentage, a: Decimal, b: Decimal
) -> None:
    assert is_valid(model)
    low, high = min(a, b), max(a, b)
    free = (Decimal(1),) * model.free_transactions  # the free ones come first

    def fee(value: Decimal) -> Decimal:
        return model.charge(Usage(quantity=value, transactions=(*free, value))).amount

    assert fee(low) <= fee(high)


@PROPERTY
@given(percentages(), quantities, quantities, st.integers(min_value=0, max_value=50))
def test_a_percentage_estimate_never_decreases_with_the_total_value(
    model: Percentage, a: Decimal, b: Decimal, count: int
) -> None:
    low, high = min(a, b), max(a, b)

    def estimate(value: Decimal) -> Decimal:
        return model.charge(Usage(quantity=value, transaction_count=count)).amount

    # Compared from a positive value: at exactly 0 with no count, no transaction is assumed.
    if low > 0 or count > 0:
        assert estimate(low) <= estimate(high)


@PROPERTY
@given(
    st.decimals(min_value=0, max_value=10**6, places=12, allow_nan=False, allow_infinity=False),
    quantities,
    quantities,
)
def test_per_unit_is_linear(unit_amount: Decimal, a: Decimal, b: Decimal) -> None:
    model = PerUnit(unit_amount)

    def charge(quantity: Decimal) -> Decimal:
        return model.charge(Usage(quantity)).amount

    assert charge(EXACT.add(a, b)) == EXACT.add(charge(a), charge(b))
    assert charge(Decimal(0)) == 0
