"""Coupons applied to priced lines.

Units: line amounts and discounts are int minor units. A percentage discount is computed on
each eligible line and rounded once, half-up. An amount discount is capped at what the eligible
lines still owe and split across them by largest remainder, so the minor units taken off equal
the coupon's amount exactly and no line goes negative (DESIGN.md §2). Coupons apply in order,
each to what the previous ones left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from billing.domain.catalog import Coupon
from billing.domain.errors import FailedPrecondition
from billing.domain.money import EXACT, allocate, round_minor


@dataclass(frozen=True, slots=True)
class Discountable:
    """What a coupon needs to know about a line."""

    product_id: str
    amount: int


def check_redeemable(coupon: Coupon, currency: str, as_of: datetime) -> None:
    """Raise FailedPrecondition when ``coupon`` cannot be used for a new sale now."""
    if not coupon.active:
        raise FailedPrecondition(f"coupon {coupon.code!r} is archived")
    if coupon.redeem_by is not None and as_of > coupon.redeem_by:
        raise FailedPrecondition(f"coupon {coupon.code!r} expired at {coupon.redeem_by.isoformat()}")
    if coupon.max_redemptions is not None and coupon.times_redeemed >= coupon.max_redemptions:
        raise FailedPrecondition(f"coupon {coupon.code!r} has been redeemed its maximum number of times")
    if coupon.amount_off is not None and coupon.currency != currency:
        raise FailedPrecondition(f"coupon {coupon.code!r} is in {coupon.currency}, the cart is in {currency}")


def discount_lines(coupon: Coupon, lines: Sequence[Discountable]) -> list[int]:
    """The minor units ``coupon`` takes off each line; never more than the line's amount."""
    eligible = [
        not coupon.applies_to_products or line.product_id in coupon.applies_to_products for line in lines
    ]
    if coupon.percent_off is not None:
        rate = EXACT.divide(coupon.percent_off, Decimal(100))
        return [
            min(line.amount, round_minor(EXACT.multiply(Decimal(line.amount), rate))) if ok else 0
            for line, ok in zip(lines, eligible, strict=True)
        ]
    assert coupon.amount_off is not None
    owed = [line.amount if ok else 0 for line, ok in zip(lines, eligible, strict=True)]
    return allocate(min(coupon.amount_off, sum(owed)), owed)
