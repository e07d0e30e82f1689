"""Graduated and volume tiers (Stripe ``tiers_mode``; Lago graduated and volume charge models).

A tier covers the units in ``(previous up_to, up_to]``: ``up_to`` is inclusive, as in Stripe.
The last tier is open (``up_to`` None). Each tier has a per-unit and a flat amount.

NOTE: quantity 0 still bills the first tier's flat amount (DESIGN.md §4): a base fee expressed
as a first-tier flat amount must not vanish in a quiet month.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from billing.domain.errors import Violations
from billing.domain.money import EXACT, exact_sum
from billing.domain.pricing.base import Charge, TierLine, Usage, check_non_negative

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Tier:
    up_to: Decimal | None
    unit_amount: Decimal = _ZERO
    flat_amount: Decimal = _ZERO


def validate_bounds(errors: Violations, field: str, bounds: Sequence[Decimal | None]) -> None:
    """Tiers must be sorted, non-overlapping, positive, and end with exactly one open tier."""
    if not bounds:
        errors.add(field, "at least one tier is required")
        return
    previous = _ZERO
    for index, up_to in enumerate(bounds):
        path = f"{field}[{index}].up_to"
        last = index == len(bounds) - 1
        if up_to is None:
            if not last:
                errors.add(path, "only the last tier may be open (no up_to)")
            continue
        if last:
            errors.add(path, "the last tier must be open (leave up_to unset)")
        if up_to <= previous:
            errors.add(path, f"must be greater than the previous bound {previous}")
        previous = max(previous, up_to)


def _validate_tiers(errors: Violations, field: str, tiers: Sequence[Tier]) -> None:
    validate_bounds(errors, field, [t.up_to for t in tiers])
    for index, tier in enumerate(tiers):
        check_non_negative(errors, f"{field}[{index}].unit_amount", tier.unit_amount)
        check_non_negative(errors, f"{field}[{index}].flat_amount", tier.flat_amount)


@dataclass(frozen=True, slots=True)
class Graduated:
    """Each unit is priced by the tier it falls in; a tier's flat amount bills once it is entered."""

    kind: ClassVar[str] = "graduated"
    tiers: tuple[Tier, ...]

    def validate(self, errors: Violations, field: str) -> None:
        _validate_tiers(errors, f"{field}.tiers", self.tiers)

    def charge(self, usage: Usage) -> Charge:
        quantity = usage.quantity
        lines: list[TierLine] = []
        after = _ZERO
        for index, tier in enumerate(self.tiers):
            if quantity <= after and not (index == 0 and quantity == 0):
                break
            top = quantity if tier.up_to is None else min(quantity, tier.up_to)
            units = EXACT.subtract(top, after)
            amount = EXACT.add(EXACT.multiply(units, tier.unit_amount), tier.flat_amount)
            lines.append(
                TierLine(index, after, tier.up_to, units, tier.unit_amount, tier.flat_amount, amount)
            )
            if tier.up_to is None:
                break
            after = tier.up_to
        total = exact_sum(line.amount for line in lines)
        return Charge(quantity=quantity, amount=total, unit_amount=None, tiers=tuple(lines))


@dataclass(frozen=True, slots=True)
class Volume:
    """Every unit is priced at the tier the total quantity falls in, plus that tier's flat amount."""

    kind: ClassVar[str] = "volume"
    tiers: tuple[Tier, ...]

    def validate(self, errors: Violations, field: str) -> None:
        _validate_tiers(errors, f"{field}.tiers", self.tiers)

    def charge(self, usage: Usage) -> Charge:
        quantity = usage.quantity
        after = _ZERO
        index, tier = len(self.tiers) - 1, self.tiers[-1]
        for candidate_index, candidate in enumerate(self.tiers):
            if candidate.up_to is None or quantity <= candidate.up_to:
                index, tier = candidate_index, candidate
                break
            after = candidate.up_to
        amount = EXACT.add(EXACT.multiply(quantity, tier.unit_amount), tier.flat_amount)
        line = TierLine(index, after, tier.up_to, quantity, tier.unit_amount, tier.flat_amount, amount)
        return Charge(quantity=quantity, amount=amount, unit_amount=tier.unit_amount, tiers=(line,))
