"""Flat fee and per-unit prices, the two simplest models."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from billing.domain.errors import Violations
from billing.domain.money import EXACT
from billing.domain.pricing.base import Charge, Usage, check_non_negative


@dataclass(frozen=True, slots=True)
class Flat:
    """A fixed amount per period whatever the quantity (a platform fee)."""

    kind: ClassVar[str] = "flat"
    amount: Decimal

    def validate(self, errors: Violations, field: str) -> None:
        check_non_negative(errors, f"{field}.amount", self.amount)

    def charge(self, usage: Usage) -> Charge:
        return Charge(quantity=usage.quantity, amount=self.amount, unit_amount=self.amount)


@dataclass(frozen=True, slots=True)
class PerUnit:
    """``unit_amount`` for every unit: seats, messages, minutes (Stripe's standard pricing)."""

    kind: ClassVar[str] = "per_unit"
    unit_amount: Decimal

    def validate(self, errors: Violations, field: str) -> None:
        check_non_negative(errors, f"{field}.unit_amount", self.unit_amount)

    def charge(self, usage: Usage) -> Charge:
        amount = EXACT.multiply(usage.quantity, self.unit_amount)
        return Charge(quantity=usage.quantity, amount=amount, unit_amount=self.unit_amount)
