"""Worked examples published by Stripe and Lago, re-priced by our models.

Every test quotes its source next to it. Only the published numbers are used; amounts are
converted to minor units (cents). Where a source gives only the prices and not a total, the
total is our own arithmetic and the comment says so.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.domain.money import round_minor
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


def tier(up_to: int | None, unit: str, flat: str = "0") -> Tier:
    return Tier(
        up_to=None if up_to is None else Decimal(up_to),
        unit_amount=Decimal(unit),
        flat_amount=Decimal(flat),
    )


def cents(model: Graduated | Volume | Package | PerUnit | GraduatedPercentage, quantity: int) -> int:
    return round_minor(model.charge(Usage(Decimal(quantity))).amount)


# --- Stripe ------------------------------------------------------------------------------------

# https://docs.stripe.com/subscriptions/pricing-models/tiered-pricing
# "| First tier | 1-5 | 7 USD | / | Second tier | 6-10 | 6.5 USD | / | Third tier | 11+ | 6 USD |"
STRIPE_FONT_TIERS = (tier(5, "700"), tier(10, "650"), tier(None, "600"))


@pytest.mark.parametrize(
    ("fonts", "usd_cents"),
    [
        # "| Quantity and usage at end of the period | Unit cost | Total monthly cost |"
        (1, 700),  # "| 1 | 7 USD | 7 USD |"
        (5, 3500),  # "| 5 | 7 USD | 35 USD |"
        (6, 3900),  # "| 6 | 6.5 USD | 39 USD |"
        (20, 12000),  # "| 20 | 6 USD | 120 USD |"
        (25, 15000),  # "| 25 | 6 USD | 150 USD |"
    ],
)
def test_stripe_volume_based_font_pricing(fonts: int, usd_cents: int) -> None:
    # Source: https://docs.stripe.com/subscriptions/pricing-models/tiered-pricing#volume-based-pricing
    # "a customer with 5 fonts is charged 35 USD (5 × 7 USD) in November. If they use 6 fonts in
    # December, then Typographic bills all fonts at the 6-10 rate. [...] 39 USD (6 × 6.5 USD)."
    assert cents(Volume(STRIPE_FONT_TIERS), fonts) == usd_cents


@pytest.mark.parametrize(
    ("fonts", "usd_cents"),
    [
        # Quoted: "5 fonts result in the same charge as volume-based pricing: 35 USD total at
        # 7 USD per font."
        (5, 3500),
        # The totals below are our arithmetic on the quoted tiers:
        (1, 700),  # 1 x 7
        (6, 4150),  # 5 x 7 + 1 x 6.5 = 35 + 6.5 = 41.50 USD
        (10, 6750),  # 35 + 5 x 6.5 = 35 + 32.5 = 67.50 USD
        (20, 12750),  # 67.5 + 10 x 6 = 127.50 USD
        (25, 15750),  # 67.5 + 15 x 6 = 157.50 USD
    ],
)
def test_stripe_graduated_font_pricing(fonts: int, usd_cents: int) -> None:
    # Source: https://docs.stripe.com/subscriptions/pricing-models/tiered-pricing#graduated-pricing
    # "Graduated pricing charges for the usage in each tier instead of applying a single price for
    # overall usage. The quantity is multiplied by the amount for each tier and the totals for
    # each tier are summed together."
    assert cents(Graduated(STRIPE_FONT_TIERS), fonts) == usd_cents


@pytest.mark.parametrize(
    ("users", "usd_cents"),
    [
        # "| Number of Users | Subscription Item Quantity Reported to Stripe | Total |"
        (1, 1000),  # "1 1 $10"
        (3, 1000),  # "3 1 $10"
        (5, 1000),  # "5 1 $10"
        (6, 2000),  # "6 2 $20"
        (7, 2000),  # "7 2 $20"
    ],
)
def test_stripe_quantity_transformation_10_dollars_per_5_users(users: int, usd_cents: int) -> None:
    # Source: https://stripe.com/docs/billing/subscriptions/quantity-transformation
    # "a productivity software suite that charges $10 for every 5 users (or portion thereof)"
    # "transform_quantity[divide_by]=5 [...] transform_quantity[round]=up [...] unit_amount=1000"
    model = Package(package_amount=Decimal("1000"), package_size=Decimal("5"), rounding=PackageRounding.UP)

    assert cents(model, users) == usd_cents


def test_stripe_transform_quantity_car_rental_rounds_minutes_up_to_hours() -> None:
    # Source: https://docs.stripe.com/billing/subscriptions/usage-based/transform-quantities
    # "Charge 10 USD per hour, and round up to charge for a full hour, even if the customer uses
    # only part of the hour." "If a customer rents the car for 150 minutes, that customer is
    # charged 30 USD for 3 hours of rental (2 hours and 30 minutes, rounded up)."
    model = Package(package_amount=Decimal("1000"), package_size=Decimal("60"), rounding=PackageRounding.UP)

    assert cents(model, 150) == 3000


def test_stripe_flat_fee_and_overages_usage_tiers() -> None:
    # Source: https://docs.stripe.com/billing/subscriptions/usage-based-v1/use-cases/flat-fee-and-overages
    # "| Usage | Fee | / | 0-1000 | 0 USD | / | 1000+ | 0.04 USD |" (the per-user licence of
    # 100 USD is a separate per-unit price). Totals are our arithmetic.
    usage = Graduated((tier(1000, "0"), tier(None, "4")))
    licence = PerUnit(Decimal("10000"))

    assert cents(usage, 0) == 0
    assert cents(usage, 1000) == 0  # all within the included 1000
    assert cents(usage, 1500) == 2000  # 500 x 0.04 USD = 20 USD
    assert cents(licence, 3) == 30000  # 3 users x 100 USD


# --- Lago --------------------------------------------------------------------------------------


def test_lago_graduated_api_calls() -> None:
    # Source: https://getlago.com/docs/guide/plans/charges/charge-models/graduated
    # "You could charge $1 per unit for the first 100 units (first 100 API calls), then $0.50 per
    # unit for the next 100 calls and finally, $0.10 for any additional unit."
    # Lago gives no total; these are our arithmetic.
    model = Graduated((tier(100, "100"), tier(200, "50"), tier(None, "10")))

    assert cents(model, 100) == 10000  # 100 x $1
    assert cents(model, 150) == 12500  # $100 + 50 x $0.50
    assert cents(model, 250) == 15500  # $100 + $50 + 50 x $0.10


def test_lago_volume_api_calls() -> None:
    # Source: https://getlago.com/docs/guide/plans/charges/charge-models/volume
    # "| Tier 1 | 0 | 10,000 | $0.0010 | $10 | / | Tier 2 | 10,001 | 50,000 | $0.0008 | $10 |
    #  | Tier 3 | 50,001 | 100,000 | $0.0006 | $10 | / | Tier 4 | 100,001 | ∞ | $0.0004 | $10 |"
    # "In this case, 65,000 API calls would cost 65,000 x $0.0006 + $10 = $49."
    model = Volume(
        (
            tier(10_000, "0.10", "1000"),
            tier(50_000, "0.08", "1000"),
            tier(100_000, "0.06", "1000"),
            tier(None, "0.04", "1000"),
        )
    )

    assert cents(model, 65_000) == 4900


def test_lago_package_with_free_units() -> None:
    # Source: https://getlago.com/docs/guide/plans/charges/charge-models/package
    # "You may want to charge $5 per 100 units and offer the first 100 units. In this example,
    # 201 units would cost $0 (first 100 units) + $5 (next 100 units) + $5 (last unit) = $10."
    model = Package(package_amount=Decimal("500"), package_size=Decimal("100"), free_units=Decimal("100"))

    assert cents(model, 201) == 1000


def test_lago_percentage_with_free_events_and_fixed_fee() -> None:
    # Source: https://getlago.com/docs/guide/plans/charges/charge-models/percentage
    # Rate 1.2 %, fixed fee $0.10 per transaction, "the first 3 events or $500 are free":
    # "| Transaction 1 | $200 | [...] | No charges |", "| Transaction 2 | $100 | [...] | No charges |",
    # "| Transaction 3 | $100 | [...] | No charges |", "| Transaction 4 | $50 | 4 events (free units
    # exceeded) | $450 ($500 free) | Charge |"
    # "for the fourth transaction, the charge will be $0.10 x 1 event + 1.2% of $50 = $0.70."
    # NOTE: we have no free *amount*; with 3 free transactions the result is the same here.
    model = Percentage(rate=Decimal("1.2"), fixed_amount=Decimal("10"), free_transactions=3)
    transactions = (Decimal(20000), Decimal(10000), Decimal(10000), Decimal(5000))

    charge = model.charge(Usage(quantity=Decimal(45000), transactions=transactions))

    assert round_minor(charge.amount) == 70


def test_lago_graduated_percentage_per_transaction_story() -> None:
    # Source: https://getlago.com/docs/guide/plans/charges/charge-models/graduated-percentage
    # "| Tier 1 | 0 | 1,000 | 1% | $200 | / | Tier 2 | 1,001 | 10,000 | 2% | $300 |
    #  | Tier 3 | 10,001 | ∞ | 3% | $400 |"
    # "A first transaction at $500 would cost (500 units x 1%) + $200 flat fee = $205.00;
    #  A second transaction at $550 would cost [(500 units x 1%) + (50 units x 2%)] + $300 flat
    #  fee = $306.00; A third transaction at $4,000 would cost (4,000 x 2%) = $80.00."
    # We price the period's cumulative volume; each step adds Lago's per-transaction cost.
    model = GraduatedPercentage(
        (
            PercentageTier(Decimal(100_000), Decimal(1), Decimal(20_000)),
            PercentageTier(Decimal(1_000_000), Decimal(2), Decimal(30_000)),
            PercentageTier(None, Decimal(3), Decimal(40_000)),
        )
    )

    assert cents(model, 50_000) == 20_500  # $205.00
    assert cents(model, 105_000) == 20_500 + 30_600  # + $306.00
    assert cents(model, 505_000) == 20_500 + 30_600 + 8_000  # + $80.00 = $591.00


def test_lago_template_for_stripe_card_fees() -> None:
    # Source: https://getlago.com/docs/templates/per-transaction/stripe
    # "| Card payments (online) | 2.9% | $0.30 |", "| Card payments (in-person) | 2.7% | $0.05 |"
    # Totals are our arithmetic.
    online = Percentage(rate=Decimal("2.9"), fixed_amount=Decimal("30"))
    in_person = Percentage(rate=Decimal("2.7"), fixed_amount=Decimal("5"))
    hundred_dollars = Usage(quantity=Decimal(10000), transactions=(Decimal(10000),))

    assert online.charge(hundred_dollars).amount == Decimal("320")  # $2.90 + $0.30
    assert in_person.charge(hundred_dollars).amount == Decimal("275")  # $2.70 + $0.05


def test_a_first_tier_flat_fee_is_billed_without_usage_as_lago_now_does() -> None:
    # Source: https://github.com/getlago/lago/issues/648 ("0 Units volume pricing flat fee is not
    # applied without usages"): "Set a flat fee of 50 $ in first row (keep default from 0 to 1
    # units)" [...] "I would expect the minimum charge without any usage metrics would be
    # Subscription Fee + Flat fee of Volume pricing's first row."
    # Fixed for volume, graduated and graduated percentage by
    # https://github.com/getlago/lago-api/pull/5760 ("fix: apply flat fee even when usage is zero").
    # Our rule (DESIGN.md §4) is the same. The second row's amounts are not given: ours.
    tiers = (tier(1, "0", "5000"), tier(None, "0", "5000"))

    assert cents(Volume(tiers), 0) == 5000
    assert cents(Graduated(tiers), 0) == 5000
