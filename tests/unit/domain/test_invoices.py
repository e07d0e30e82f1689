"""The close of a boundary (docs/billing-rules.md §3, §6): inputs it insists on, adjustments,
percentage usage and the credit balance."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from billing.domain.errors import FailedPrecondition
from billing.domain.invoices import (
    BilledUsage,
    BillingCustomer,
    CloseInputs,
    adjustment_cutoff,
    close_boundary,
    usage_windows,
)
from billing.domain.lines import InvoiceLineKind
from billing.domain.pricing import Usage
from billing.domain.subscriptions import PriceItem, create_subscription
from tests.unit.domain.subscription_catalog import CATALOG, new, utc

US = BillingCustomer("US")


def test_a_missing_usage_total_is_an_error_not_a_zero() -> None:
    sub = create_subscription(new(), CATALOG, utc(2024, 4, 1))
    first = close_boundary(CloseInputs(sub, CATALOG, US, 0)).subscription
    with pytest.raises(ValueError, match="no usage total"):
        close_boundary(CloseInputs(first, CATALOG, US, 1))


def test_only_the_next_boundary_of_a_live_subscription_closes() -> None:
    sub = create_subscription(new(), CATALOG, utc(2024, 4, 1))
    with pytest.raises(ValueError, match="not the next"):
        close_boundary(CloseInputs(sub, CATALOG, US, 1))
    with pytest.raises(FailedPrecondition, match="ended"):
        close_boundary(CloseInputs(replace(sub, ended_at=utc(2024, 4, 1)), CATALOG, US, 0))


def test_a_percentage_price_asks_for_the_transactions_and_bills_each() -> None:
    sub = create_subscription(
        new(None, prices=(PriceItem("fee"), PriceItem("wfm"))), CATALOG, utc(2024, 4, 1)
    )
    sub = close_boundary(CloseInputs(sub, CATALOG, US, 0)).subscription
    [window] = usage_windows(sub, 1, CATALOG)
    assert window.transactions
    usage = Usage(Decimal(12000), transactions=(Decimal(2000), Decimal(10000)))
    draft = close_boundary(CloseInputs(sub, CATALOG, US, 1, {window: usage})).draft
    assert draft is not None
    # 1.5% + 30 per transaction: 30 + 30 = 60 and 150 + 30 = 180; 240 in all.
    assert [(line.kind, line.amount) for line in draft.lines] == [
        (InvoiceLineKind.USAGE, 240),
        (InvoiceLineKind.FEE, 500),
    ]


def test_late_usage_of_a_yearly_period_is_adjusted_at_the_next_yearly_close() -> None:
    # The first rule ("window ended within 35 days before b") would skip this line: its window
    # ended a year before the close. The rule now: it ended after the previous boundary - 35 days.
    prices = (PriceItem("yearly"), PriceItem("email_yearly"))
    sub = create_subscription(new(None, prices=prices), CATALOG, utc(2024, 1, 1))
    sub = close_boundary(CloseInputs(sub, CATALOG, US, 0)).subscription
    [window] = usage_windows(sub, 1, CATALOG)
    closed = close_boundary(CloseInputs(sub, CATALOG, US, 1, {window: Usage(Decimal(150))}))
    assert closed.draft is not None
    line = closed.draft.lines[0]
    assert (line.kind, line.amount) == (InvoiceLineKind.USAGE, 50)  # 100 free, 50 x 1
    later = closed.subscription
    assert adjustment_cutoff(later, 2) == utc(2025, 1, 1) - timedelta(days=35)
    too_old = replace(line, window=replace(window, end=utc(2024, 11, 26)))
    billed = (BilledUsage(line, 50, Usage(Decimal(250))), BilledUsage(too_old, 50, Usage(Decimal(250))))
    usage = {w: Usage(Decimal(0)) for w in usage_windows(later, 2, CATALOG)}
    draft = close_boundary(CloseInputs(later, CATALOG, US, 2, usage, billed_usage=billed)).draft
    assert draft is not None
    adjustments = [x for x in draft.lines if x.kind is InvoiceLineKind.USAGE_ADJUSTMENT]
    # 250 late-inclusive messages: 150 x 1 = 150, billed 50: +100, not discounted; the line whose
    # window ended before the cutoff is left alone.
    assert [(x.amount, x.discount, x.period.end) for x in adjustments] == [(100, 0, utc(2025, 1, 1))]


def test_the_credit_balance_pays_first_and_a_negative_total_adds_to_it() -> None:
    sub = create_subscription(new("basic", 3), CATALOG, utc(2024, 4, 1))
    draft = close_boundary(CloseInputs(sub, CATALOG, US, 0, credit_balance=1200)).draft
    assert draft is not None
    assert (draft.total, draft.credit_applied, draft.amount_due, draft.credit_balance_after) == (
        3000,
        1200,
        1800,
        0,
    )
    rich = close_boundary(CloseInputs(sub, CATALOG, US, 0, credit_balance=5000)).draft
    assert rich is not None
    assert (rich.credit_applied, rich.amount_due, rich.credit_balance_after) == (3000, 0, 2000)
