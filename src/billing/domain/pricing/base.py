"""What every price model takes and gives.

Units: amounts are ``Decimal`` minor units, unrounded. ``Charge.amount`` is exact: it is what a
person recomputes from the tier lines by hand, and it is rounded once, half-up, by the line.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar, Protocol

from billing.domain.errors import Violations


@dataclass(frozen=True, slots=True)
class Usage:
    """How much was used in a period.

    ``quantity`` is seats, units or (for percentage models) the total transaction value in minor
    units. ``transactions`` are the individual transaction values when a percentage model needs
    them for per-transaction fees and caps; without them, ``transaction_count`` transactions of
    equal value are assumed (a quote's estimate).
    """

    quantity: Decimal
    transactions: tuple[Decimal, ...] | None = None
    transaction_count: int = 0


@dataclass(frozen=True, slots=True)
class TierLine:
    """One tier's share of a charge: the units that fell in ``(after, up_to]``."""

    index: int
    after: Decimal
    up_to: Decimal | None
    quantity: Decimal
    unit_amount: Decimal
    flat_amount: Decimal
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Charge:
    """An exact, unrounded charge for one price and one usage."""

    quantity: Decimal
    amount: Decimal
    unit_amount: Decimal | None
    tiers: tuple[TierLine, ...] = ()


class PriceModel(Protocol):
    """A pricing rule. Implementations are frozen dataclasses holding plain values."""

    kind: ClassVar[str]

    def validate(self, errors: Violations, field: str) -> None:
        """Add a violation for every bad parameter, with paths under ``field``."""

    def charge(self, usage: Usage) -> Charge:
        """The exact charge for ``usage``. Assumes ``validate`` found nothing."""
        ...


def check_non_negative(errors: Violations, field: str, value: Decimal | None) -> None:
    if value is not None and value < 0:
        errors.add(field, "must not be negative")
