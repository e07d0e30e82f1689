"""The invoice of a boundary: usage in arrears, fees in advance, prorations, adjustments, discounts,
tax, credit balance (docs/billing-rules.md §3, §5, §6).

``close_boundary`` is a pure function of its inputs: the invoicer calls it to draft the invoice
of a boundary, again (with the same subscription state and fresh usage) to finalize it, and the
API calls it to preview the upcoming invoice. Units: int minor units for amounts, exact
Decimals for quantities, one rounding per line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from fractions import Fraction

from billing.domain.catalog import Catalog, CouponDuration
from billing.domain.errors import FailedPrecondition
from billing.domain.lines import InvoiceLine, InvoiceLineKind, LineDiscount, UsageWindow
from billing.domain.money import round_fraction, round_minor
from billing.domain.periods import Period
from billing.domain.pricing import Usage
from billing.domain.proration import factor
from billing.domain.subscriptions import (
    Coverage,
    Item,
    ItemKind,
    Subscription,
    SubscriptionStatus,
    TrialEndBehavior,
    apply_scheduled_change,
    coupon_applies,
    discount,
    full_charge,
    item_order,
)
from billing.domain.tax import BUILT_IN, TaxTable, apply_tax

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
    return list(dict.fromkeys(window for _, window in _usage_items(sub, boundary_index, catalog)))


def adjustment_cutoff(
    sub: Subscription, boundary_index: int, horizon: timedelta = LATE_EVENT_HORIZON
) -> datetime:
    """Finalized usage lines whose window ended after this instant are rated again at this close:
    the close before it could not yet have seen all their late events (billing-rules.md §3.4)."""
    return sub.boundary(boundary_index - 1) - horizon


def close_boundary(inputs: CloseInputs) -> CloseResult:
    """Build the invoice of a boundary and the subscription after it (billing-rules.md §3)."""
    sub, catalog, k = inputs.subscription, inputs.catalog, inputs.boundary_index
    if sub.ended_at is not None:
        raise FailedPrecondition(f"subscription {sub.id!r} ended at {sub.ended_at.isoformat()}")
    if k != sub.next_boundary:
        raise ValueError(f"boundary {k} is not the next to close ({sub.next_boundary})")
    b = sub.boundary(k)
    trial_cancels = (
        b == sub.billing_start
        and sub.trial_end is not None
        and sub.trial_end_behavior is TrialEndBehavior.CANCEL
        and not inputs.customer.has_payment_method
    )
    if trial_cancels:
        ended = replace(sub, status=SubscriptionStatus.CANCELED, cancel_at=b, ended_at=b, next_boundary=k + 1)
        return CloseResult(None, _after_close(ended, b, catalog), (), ())
    ends = sub.cancel_at is not None and b >= sub.cancel_at
    usage = _usage_lines(inputs, b)
    after = sub if ends else apply_scheduled_change(sub, catalog, b)
    fees = [] if ends else _fee_lines(after, k, catalog)
    discounted = discount([*usage, *fees], sub.coupons, catalog, b, debit=False)
    pending = tuple(line for line in inputs.pending_prorations if line.at is not None and line.at <= b)
    adjustments = _adjustments(inputs)
    lines = [*discounted, *pending, *adjustments]
    fee_lines = discounted[len(usage) :]
    coverages = tuple(
        Coverage(line.coverage_id or "", line.item_key, line.price_id, line.quantity, line.period, line.net)
        for line in fee_lines
    )
    usage_period = Period(sub.boundary(k - 1), b)
    fee_period = None if ends else Period(b, after.boundary(k + 1))
    draft = None
    if lines:
        draft = _assemble(
            sub, lines, catalog, inputs.customer, inputs.tax_table, inputs.credit_balance,
            k, b, usage_period, fee_period,
        )  # fmt: skip
    status = SubscriptionStatus.CANCELED if ends else SubscriptionStatus.ACTIVE
    closed = replace(after, status=status, ended_at=b if ends else None, next_boundary=k + 1)
    return CloseResult(draft, _after_close(closed, b, catalog), coverages, pending)


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
    return _assemble(sub, lines, catalog, customer, tax_table, credit_balance, None, at, None, None)


def _usage_items(sub: Subscription, k: int, catalog: Catalog) -> list[tuple[Item, UsageWindow]]:
    """Each usage item valid in ``[boundary(k-1), boundary(k))`` with its clipped window."""
    start, end = sub.boundary(k - 1), sub.boundary(k)
    found: list[tuple[Item, UsageWindow]] = []
    for item in sorted(sub.items, key=item_order):
        if item.kind is not ItemKind.USAGE:
            continue
        low = max(start, item.valid_from)
        high = end if item.valid_to is None else min(end, item.valid_to)
        if low >= high:
            continue
        price = catalog.price(item.price_id)
        assert price.usage is not None
        transactions = price.model.kind == "percentage"
        window = UsageWindow(
            sub.customer_id, price.usage.meter_id, price.usage.filters, low, high, transactions
        )
        found.append((item, window))
    return found


def _usage_lines(inputs: CloseInputs, b: datetime) -> list[InvoiceLine]:
    lines: list[InvoiceLine] = []
    for item, window in _usage_items(inputs.subscription, inputs.boundary_index, inputs.catalog):
        try:
            usage = inputs.usage[window]
        except KeyError:
            # The store must aggregate every window; a missing one would silently bill 0.
            raise ValueError(f"no usage total for {window}") from None
        price = inputs.catalog.price(item.price_id)
        charge = price.model.charge(usage)
        lines.append(
            InvoiceLine(
                kind=InvoiceLineKind.USAGE,
                description=inputs.catalog.describe_price(price),
                item_key=item.key,
                price_id=price.id,
                product_id=price.product_id,
                quantity=charge.quantity,
                unit_amount=charge.unit_amount,
                period=Period(window.start, window.end),
                amount=round_minor(charge.amount),
                unrounded_amount=Fraction(charge.amount),
                tiers=charge.tiers,
                window=window,
            )
        )
    return lines


def _fee_lines(sub: Subscription, k: int, catalog: Catalog) -> list[InvoiceLine]:
    """Licensed items valid at ``boundary(k)``, for ``[boundary(k), boundary(k+1))``; the partial
    first period of a calendar cycle is prorated over the calendar period containing it."""
    period = sub.period(k)
    whole = sub.cycle.period(k)
    share = None
    if period.start != whole.start:
        share = factor(period.start, whole, sub.proration_policy, sub.time_zone)
    lines: list[InvoiceLine] = []
    for item in sorted(sub.items, key=item_order):
        if not item.licensed or not item.valid_at(period.start):
            continue
        price = catalog.price(item.price_id)
        charge = full_charge(price, item.quantity, item.included)
        exact = Fraction(charge.amount) * (share if share is not None else 1)
        lines.append(
            InvoiceLine(
                kind=InvoiceLineKind.FEE,
                description=catalog.describe_price(price),
                item_key=item.key,
                price_id=price.id,
                product_id=price.product_id,
                quantity=item.quantity,
                unit_amount=charge.unit_amount,
                period=period,
                amount=round_fraction(exact),
                unrounded_amount=exact,
                tiers=charge.tiers,
                proration_factor=share,
                included=item.included,
                coverage_id=f"b{k}:{item.key}",
            )
        )
    return lines


def _adjustments(inputs: CloseInputs) -> list[InvoiceLine]:
    cutoff = adjustment_cutoff(inputs.subscription, inputs.boundary_index, inputs.horizon)
    lines: list[InvoiceLine] = []
    for billed in inputs.billed_usage:
        line = billed.line
        if line.window is None or line.window.end <= cutoff:
            continue
        price = inputs.catalog.price(line.price_id)
        charge = price.model.charge(billed.usage)
        difference = round_minor(charge.amount) - billed.billed
        if difference == 0:
            continue
        lines.append(
            replace(
                line,
                kind=InvoiceLineKind.USAGE_ADJUSTMENT,
                description=f"{line.description}: late usage",
                quantity=charge.quantity,
                unit_amount=charge.unit_amount,
                amount=difference,
                unrounded_amount=Fraction(charge.amount) - billed.billed,
                tiers=charge.tiers,
                discounts=(),
                tax=0,
                tax_rate=None,
            )
        )
    return lines


def _after_close(sub: Subscription, b: datetime, catalog: Catalog) -> Subscription:
    """Drop items that ended by ``b`` and use up the coupons that cannot apply after it."""
    items = tuple(item for item in sub.items if item.valid_to is None or item.valid_to > b)
    coupons = []
    for applied in sub.coupons:
        coupon = catalog.coupons[applied.coupon_id]
        spent = (
            coupon_applies(applied, coupon, b, debit=False) and coupon.duration is CouponDuration.ONCE
        ) or (applied.end is not None and applied.end <= b)
        coupons.append(replace(applied, used_up=True) if spent and not applied.used_up else applied)
    return replace(sub, items=items, coupons=tuple(coupons))


def _assemble(
    sub: Subscription,
    lines: Sequence[InvoiceLine],
    catalog: Catalog,
    customer: BillingCustomer,
    tax_table: TaxTable,
    credit_balance: int,
    boundary_index: int | None,
    issued_at: datetime,
    usage_period: Period | None,
    fee_period: Period | None,
) -> InvoiceDraft:
    rates = [tax_table.rate(customer.country, _tax_code(catalog, line.product_id)) for line in lines]
    taxes = apply_tax([line.net for line in lines], rates)
    taxed = tuple(
        replace(line, tax=tax, tax_rate=rate) for line, tax, rate in zip(lines, taxes, rates, strict=True)
    )
    subtotal = sum(line.amount for line in taxed)
    discount_total = sum(line.discount for line in taxed)
    tax_total = sum(taxes)
    total = subtotal - discount_total + tax_total
    applied = min(max(credit_balance, 0), total) if total > 0 else 0
    balance_after = credit_balance - applied + (-total if total < 0 else 0)
    return InvoiceDraft(
        subscription_id=sub.id,
        customer_id=sub.customer_id,
        currency=sub.currency,
        boundary_index=boundary_index,
        issued_at=issued_at,
        usage_period=usage_period,
        fee_period=fee_period,
        lines=taxed,
        subtotal=subtotal,
        discount=discount_total,
        tax=tax_total,
        total=total,
        credit_applied=applied,
        amount_due=max(total - applied, 0),
        credit_balance_after=balance_after,
    )


def _tax_code(catalog: Catalog, product_id: str) -> str:
    product = catalog.products.get(product_id)
    return product.tax_code if product is not None else ""
