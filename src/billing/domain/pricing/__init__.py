"""Price models: one class per model, chosen by ``kind`` (Lago's charge models, our rules).

Every model turns a usage (a quantity, and for percentage models the transaction values) into an
exact, unrounded ``Charge`` in minor units. Rounding is the caller's job, once per line.
"""

from billing.domain.pricing.base import Charge, PriceModel, TierLine, Usage
from billing.domain.pricing.flat import Flat, PerUnit
from billing.domain.pricing.package import Package, PackageRounding
from billing.domain.pricing.percentage import GraduatedPercentage, Percentage, PercentageTier
from billing.domain.pricing.tiers import Graduated, Tier, Volume

__all__ = [
    "Charge",
    "Flat",
    "Graduated",
    "GraduatedPercentage",
    "Package",
    "PackageRounding",
    "PerUnit",
    "Percentage",
    "PercentageTier",
    "PriceModel",
    "Tier",
    "TierLine",
    "Usage",
    "Volume",
]
