"""Percentage of a transaction value, flat or graduated (Lago's percentage charge models).

Units: ``rate`` is a percentage ("2.9" means 2.9 %); transaction values, fees, minimums and
maximums are minor units. The minimum and maximum bound each transaction's fee (rate part plus
fixed fee), not the period total.
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import ClassVar

from billing.domain.errors import Violations
from billing.domain.money import EXACT, exact_sum
from billing.domain.pricing.base import Charge, TierLine, Usage, check_non_negative
from billing.domain.pricing.tiers import validate_bounds

_ZERO = Decimal(0)
_HUNDRED = Decimal(100)
_APPROX = decimal.Context(prec=80, rounding=decimal.ROUND_HALF_EVEN)


def _check_rate(errors: Violations, field: str, rate: Decimal) -> None:
    if not _ZERO <= rate <= _HUNDRED:
        errors.add(field, "must be a percentage between 0 and 100")


@dataclass(frozen=True, slots=True)
class Percentage:
    """``rate`` % of each transaction plus ``fixed_amount``, clamped per transaction.

    The first ``free_transactions`` transactions of the period are not charged at all.
    """

    kind: ClassVar[str] = "percentage"
    rate: Decimal
    fixed_amount: Decimal = _ZERO
    min_per_transaction: Decimal | None = None
    max_per_transaction: Decimal | None = None
    free_transactions: int = 0

    def validate(self, errors: Violations, field: str) -> None:
        _check_rate(errors, f"{field}.rate", self.rate)
        check_non_negative(errors, f"{field}.fixed_amount", self.fixed_amount)
        check_non_negative(errors, f"{field}.min_per_transaction", self.min_per_transaction)
        check_non_negative(errors, f"{field}.max_per_transaction", self.max_per_transaction)
        if self.free_transactions < 0:
            errors.add(f"{field}.free_transactions", "must not be negative")
        low, high = self.min_per_transaction, self.max_per_transaction
        if low is not None and high is not None and low > high:
            errors.add(f"{field}.max_per_transaction", "must not be below min_per_transaction")

    def _fee(self, value: Fraction) -> Fraction:
        fee = value * Fraction(self.rate) / 100 + Fraction(self.fixed_amount)
        if self.min_per_transaction is not None:
            fee = max(fee, Fraction(self.min_per_transaction))
        if self.max_per_transaction is not None:
            fee = min(fee, Fraction(self.max_per_transaction))
        return fee

    def charge(self, usage: Usage) -> Charge:
        if usage.transactions is not None:
            billed: Sequence[Decimal] = usage.transactions[self.free_transactions :]
            total = sum((self._fee(Fraction(v)) for v in billed), Fraction(0))
            return Charge(quantity=usage.quantity, amount=_exact(total), unit_amount=None)
        # A quote's estimate: transaction_count transactions of equal value.
        count = usage.transaction_count
        if count <= 0:
            count = 1 if usage.quantity > 0 else 0
        billed_count = max(count - self.free_transactions, 0)
        if billed_count == 0:
            return Charge(quantity=usage.quantity, amount=_ZERO, unit_amount=None)
        each = self._fee(Fraction(usage.quantity) / count)
        return Charge(quantity=usage.quantity, amount=_exact(each * billed_count), unit_amount=None)


@dataclass(frozen=True, slots=True)
class PercentageTier:
    up_to: Decimal | None
    rate: Decimal
    flat_amount: Decimal = _ZERO


@dataclass(frozen=True, slots=True)
class GraduatedPercentage:
    """Each slice of the period's transaction volume pays its tier's rate; flat amounts as graduated."""

    kind: ClassVar[str] = "graduated_percentage"
    tiers: tuple[PercentageTier, ...]

    def validate(self, errors: Violations, field: str) -> None:
        path = f"{field}.tiers"
        validate_bounds(errors, path, [t.up_to for t in self.tiers])
        for index, tier in enumerate(self.tiers):
            _check_rate(errors, f"{path}[{index}].rate", tier.rate)
            check_non_negative(errors, f"{path}[{index}].flat_amount", tier.flat_amount)

    def charge(self, usage: Usage) -> Charge:
        volume = usage.quantity
        lines: list[TierLine] = []
        after = _ZERO
        for index, tier in enumerate(self.tiers):
            if volume <= after and not (index == 0 and volume == 0):
                break
            top = volume if tier.up_to is None else min(volume, tier.up_to)
            slice_ = EXACT.subtract(top, after)
            amount = EXACT.add(EXACT.divide(EXACT.multiply(slice_, tier.rate), _HUNDRED), tier.flat_amount)
            lines.append(TierLine(index, after, tier.up_to, slice_, tier.rate, tier.flat_amount, amount))
            if tier.up_to is None:
                break
            after = tier.up_to
        total = exact_sum(line.amount for line in lines)
        return Charge(quantity=volume, amount=total, unit_amount=None, tiers=tuple(lines))


def _exact(value: Fraction) -> Decimal:
    """A Fraction whose denominator divides a power of ten, as an exact Decimal.

    An equal split of a quote's volume may not terminate (100 / 3); such an amount is carried
    to 30 places, far below the half-minor-unit the line rounding works at.
    """
    numerator, denominator = Decimal(value.numerator), Decimal(value.denominator)
    try:
        return EXACT.divide(numerator, denominator)
    except decimal.Inexact:
        return _APPROX.quantize(_APPROX.divide(numerator, denominator), Decimal("1e-30"))
