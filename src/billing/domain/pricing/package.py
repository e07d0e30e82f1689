"""Package pricing: units are sold in packages of a fixed size (Stripe ``transform_quantity``).

NOTE: free units are taken off before dividing, as Lago does: with 100 free units and packages of
100, 250 units bill ceil(150 / 100) = 2 packages.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from billing.domain.errors import Violations
from billing.domain.money import EXACT
from billing.domain.pricing.base import Charge, Usage, check_non_negative


class PackageRounding(enum.Enum):
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class Package:
    """``package_amount`` per started (UP) or completed (DOWN) package of ``package_size`` units."""

    kind: ClassVar[str] = "package"
    package_amount: Decimal
    package_size: Decimal
    rounding: PackageRounding = PackageRounding.UP
    free_units: Decimal = Decimal(0)

    def validate(self, errors: Violations, field: str) -> None:
        check_non_negative(errors, f"{field}.package_amount", self.package_amount)
        check_non_negative(errors, f"{field}.free_units", self.free_units)
        if self.package_size <= 0:
            errors.add(f"{field}.package_size", "must be greater than zero")

    def charge(self, usage: Usage) -> Charge:
        billable = max(EXACT.subtract(usage.quantity, self.free_units), Decimal(0))
        # Division of two finite decimals need not terminate; only its integer part matters.
        whole, remainder = EXACT.divmod(billable, self.package_size)
        started = 1 if remainder and self.rounding is PackageRounding.UP else 0
        packages = whole + started
        amount = EXACT.multiply(packages, self.package_amount)
        return Charge(quantity=usage.quantity, amount=amount, unit_amount=self.package_amount)
