"""The invoice of a boundary: usage in arrears, fees in advance, prorations, adjustments, discounts,
tax, credit balance (docs/billing-rules.md §3, §5, §6).

``close_boundary`` is a pure function of its inputs: the invoicer calls it to draft the invoice
of a boundary, again (with the same subscription state and fresh usage) to finalize it, and the
API calls it to preview the upcoming invoice. Units: int minor units for amounts, exact
Decimals for quantities, one rounding per line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from billing.domain.catalog import Catalog
from billing.domain.lines import InvoiceLine, InvoiceLineKind, LineDiscount, UsageWindow
from billing.domain.periods import Period
from billing.domain.pricing import Usage
from billing.domain.subscriptions import Coverage, Subscription
from billing.domain.tax import BUILT_IN, TaxTable

__all__ = [
    "BilledUsage",
    "BillingCustomer",
    "CloseInputs",
    "CloseResult",
    "InvoiceDraft",
    "InvoiceLine",
    "InvoiceLineKind",
    "LineDiscount",
    "UsageWindow",
    "adjustment_cutoff",
    "close_boundary",
    "proration_invoice",
    "usage_windows",
]

LATE_EVENT_HORIZON = timedelta(days=35)


@dataclass(frozen=True, slots=True)
class BillingCustomer:
    """What a close needs to know about the customer."""

    country: str
    has_payment_method: bool = True


@dataclass(frozen=True, slots=True)
class BilledUsage:
    """A usage line of an earlier finalized invoice, to be rated again with today's events.

    ``billed`` is what has been charged for it so far: the line's amount plus every adjustment
    made to it since. ``usage`` is today's aggregate of ``line.window``.
    """

    line: InvoiceLine
    billed: int
    usage: Usage


@dataclass(frozen=True)
class CloseInputs:
    """Everything the close of ``boundary_index`` reads.

    ``subscription`` is the state before the close (``next_boundary == boundary_index``).
    ``usage`` has an entry for every window of ``usage_windows(subscription, boundary_index,
    catalog)``. ``pending_prorations`` are the proration lines not yet invoiced; those made at
    or before the boundary go on this invoice. ``coverages`` are the subscription's live
    coverages. ``billed_usage``: the finalized usage lines whose window ended after
    ``adjustment_cutoff(...)`` (a superset is fine: the close filters).
    """

    subscription: Subscription
    catalog: Catalog
    customer: BillingCustomer
    boundary_index: int
    usage: Mapping[UsageWindow, Usage] = field(default_factory=dict)
    pending_prorations: Sequence[InvoiceLine] = ()
    coverages: Sequence[Coverage] = ()
    billed_usage: Sequence[BilledUsage] = ()
    credit_balance: int = 0
    tax_table: TaxTable = BUILT_IN
    horizon: timedelta = LATE_EVENT_HORIZON


@dataclass(frozen=True)
class InvoiceDraft:
    """An invoice before its number: lines and totals in minor units.

    ``boundary_index`` is None for the invoice of an ``always_invoice`` change. ``issued_at`` is
    the boundary (or the change's instant). ``usage_period`` is what usage lines cover and
    ``fee_period`` what fee lines pay for. ``credit_balance_after`` is the customer's credit
    balance once this invoice is paid from it (a negative total adds to it).
    """

    subscription_id: str
    customer_id: str
    currency: str
    boundary_index: int | None
    issued_at: datetime
    usage_period: Period | None
    fee_period: Period | None
    lines: tuple[InvoiceLine, ...]
    subtotal: int
    discount: int
    tax: int
    total: int
    credit_applied: int
    amount_due: int
    credit_balance_after: int


@dataclass(frozen=True)
class CloseResult:
    """The draft (None when there is nothing to invoice: a trial that cancels, or no lines),
    the subscription after the boundary, the coverages it creates (the fees of the new period)
    and the pending proration lines it invoiced."""

    draft: InvoiceDraft | None
    subscription: Subscription
    coverages: tuple[Coverage, ...]
    prorations_invoiced: tuple[InvoiceLine, ...]


def usage_windows(sub: Subscription, boundary_index: int, catalog: Catalog) -> list[UsageWindow]:
    """The windows the store must aggregate for the close of ``boundary_index``, without repeats."""
    raise NotImplementedError


def adjustment_cutoff(
    sub: Subscription, boundary_index: int, horizon: timedelta = LATE_EVENT_HORIZON
) -> datetime:
    """Finalized usage lines whose window ended after this instant are rated again at this close."""
    raise NotImplementedError


def close_boundary(inputs: CloseInputs) -> CloseResult:
    """Build the invoice of a boundary and the subscription after it (billing-rules.md §3)."""
    raise NotImplementedError


def proration_invoice(
    sub: Subscription,
    lines: Sequence[InvoiceLine],
    catalog: Catalog,
    customer: BillingCustomer,
    at: datetime,
    credit_balance: int = 0,
    tax_table: TaxTable = BUILT_IN,
) -> InvoiceDraft:
    """The invoice of an ``always_invoice`` change: its proration lines alone, taxed."""
    raise NotImplementedError
