"""Invoice lines: what one priced, prorated, discounted and taxed line carries.

Units: ``amount``, discounts, tax and net are int minor units; ``unrounded_amount`` is the exact
amount before the line's one rounding (a ``Fraction``, because a prorated amount is rarely a
finite decimal); quantities and unit amounts are exact Decimals. A line carries enough to be
recomputed by a person: quantity, unit amount, tiers, period, proration factor, discounts.
``billing.domain.invoices`` re-exports these names; they live here so that subscriptions (which
create proration lines) and invoices (which close periods) can share them without a cycle.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction

from billing.domain.periods import Period
from billing.domain.pricing import TierLine
from billing.domain.tax import TaxRate


class InvoiceLineKind(enum.Enum):
    USAGE = "usage"  # in arrears, for a window of the period that ends at the boundary
    FEE = "fee"  # in advance, for the period that starts at the boundary
    PRORATION_CREDIT = "proration_credit"  # unused time of what a coverage charged, negative
    PRORATION_DEBIT = "proration_debit"  # the new configuration for the rest of the period
    USAGE_ADJUSTMENT = "usage_adjustment"  # a finalized usage line rated again with late events


@dataclass(frozen=True, slots=True)
class LineDiscount:
    coupon_id: str
    amount: int


@dataclass(frozen=True, slots=True)
class UsageWindow:
    """What the store must aggregate for one usage line: a customer's events of ``meter_id``
    matching every filter, with ``start <= occurred_at < end``.

    ``transactions``: the price is a percentage model, so the store returns the individual
    event values (``Usage.transactions``) as well as their aggregate.
    """

    customer_id: str
    meter_id: str
    filters: tuple[tuple[str, str], ...]
    start: datetime
    end: datetime
    transactions: bool = False


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    """One line of an invoice or a pending proration line.

    ``item_key`` names the subscription item (``seat``, ``add_on:<id>``, ``usage:<price id>``).
    ``coverage_id``: for a fee or a debit, the coverage it creates; for a credit, the coverage it
    credits. ``at``: the instant of the change that made a proration line. ``window``: the usage
    window a usage line or an adjustment rates. ``tax`` and ``tax_rate`` are set when the line is
    put on an invoice (a pending proration line has none yet).
    """

    kind: InvoiceLineKind
    description: str
    item_key: str
    price_id: str
    product_id: str
    quantity: Decimal
    unit_amount: Decimal | None
    period: Period
    amount: int
    unrounded_amount: Fraction
    tiers: tuple[TierLine, ...] = ()
    proration_factor: Fraction | None = None
    discounts: tuple[LineDiscount, ...] = ()
    tax: int = 0
    tax_rate: TaxRate | None = None
    included: bool = False
    window: UsageWindow | None = None
    coverage_id: str | None = None
    at: datetime | None = None

    @property
    def discount(self) -> int:
        return sum(d.amount for d in self.discounts)

    @property
    def net(self) -> int:
        """What the line charges after its discounts, before tax."""
        return self.amount - self.discount

    @property
    def total(self) -> int:
        return self.net + self.tax
