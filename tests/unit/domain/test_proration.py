"""Proration factors (docs/billing-rules.md §4) and the rounding of exact fractions."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction

import pytest

from billing.domain.money import round_fraction
from billing.domain.periods import Period
from billing.domain.proration import ProrationPolicy, factor

APRIL = Period(datetime(2024, 4, 1, tzinfo=UTC), datetime(2024, 5, 1, tzinfo=UTC))


def test_per_second_counts_the_time_left() -> None:
    # 15 of April's 30 days are left on Apr 16 00:00 (Stripe's mid-month upgrade example).
    assert factor(datetime(2024, 4, 16, tzinfo=UTC), APRIL, ProrationPolicy.PER_SECOND, "UTC") == Fraction(
        1, 2
    )
    noon = datetime(2024, 4, 16, 12, tzinfo=UTC)
    assert factor(noon, APRIL, ProrationPolicy.PER_SECOND, "UTC") == Fraction(29, 60)


def test_per_day_counts_the_local_day_of_the_change_as_remaining() -> None:
    # Apr 15 23:30 UTC is Apr 16 01:30 in Berlin: 15 local days left of 30.
    late = datetime(2024, 4, 15, 23, 30, tzinfo=UTC)
    assert factor(late, APRIL, ProrationPolicy.PER_DAY, "Europe/Berlin") == Fraction(15, 30)
    assert factor(late, APRIL, ProrationPolicy.PER_DAY, "UTC") == Fraction(16, 30)


def test_the_ends_of_the_period_give_1_and_0() -> None:
    assert factor(APRIL.start, APRIL, ProrationPolicy.PER_SECOND, "UTC") == 1
    assert factor(APRIL.end, APRIL, ProrationPolicy.PER_DAY, "UTC") == 0


def test_a_whole_within_one_local_date_is_worth_0_days() -> None:
    whole = Period(datetime(2024, 4, 30, 10, tzinfo=UTC), datetime(2024, 4, 30, 20, tzinfo=UTC))
    assert factor(datetime(2024, 4, 30, 12, tzinfo=UTC), whole, ProrationPolicy.PER_DAY, "UTC") == 0


def test_an_instant_outside_the_period_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        factor(datetime(2024, 3, 31, tzinfo=UTC), APRIL, ProrationPolicy.PER_SECOND, "UTC")


@pytest.mark.parametrize(
    ("value", "rounded"),
    [
        (Fraction(1, 2), 1),
        (Fraction(-1, 2), -1),
        (Fraction(5, 2), 3),
        (Fraction(-5, 2), -3),
        (Fraction(1, 3), 0),
        (Fraction(-2, 3), -1),
        (Fraction(20000, 3), 6667),
        (Fraction(0), 0),
    ],
)
def test_fractions_round_half_away_from_zero(value: Fraction, rounded: int) -> None:
    assert round_fraction(value) == rounded
