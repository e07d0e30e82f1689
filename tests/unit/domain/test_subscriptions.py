"""Subscriptions and their changes (docs/billing-rules.md §2, §4, §5), numbers checked by hand."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction

import pytest

from billing.domain.errors import FailedPrecondition, InvalidArgument
from billing.domain.invoices import BillingCustomer, CloseInputs, CloseResult, close_boundary, usage_windows
from billing.domain.lines import InvoiceLineKind
from billing.domain.pricing import Usage
from billing.domain.subscriptions import (
    Coverage,
    PeriodNotClosed,
    PriceItem,
    ProrationBehavior,
    Subscription,
    SubscriptionChange,
    SubscriptionStatus,
    cancel_subscription,
    change_subscription,
    create_subscription,
    remove_scheduled_cancellation,
    schedule_change,
)
from tests.unit.domain.subscription_catalog import CATALOG, new, utc

US = BillingCustomer("US")


def _close(sub: Subscription, coverages: tuple[Coverage, ...] = (), **kwargs: object) -> CloseResult:
    k = sub.next_boundary
    usage = {w: Usage(Decimal(0)) for w in usage_windows(sub, k, CATALOG)}
    inputs = CloseInputs(sub, CATALOG, US, k, usage, coverages=coverages, **kwargs)  # type: ignore[arg-type]
    return close_boundary(inputs)


def _started(
    seats: int = 1, plan: str = "basic", **kwargs: object
) -> tuple[Subscription, tuple[Coverage, ...]]:
    sub = create_subscription(new(plan, seats, **kwargs), CATALOG, utc(2024, 4, 1))
    first = _close(sub)
    return first.subscription, first.coverages


def test_a_new_subscription_is_first_billed_at_its_start() -> None:
    sub = create_subscription(new("basic", 2), CATALOG, utc(2024, 4, 1))
    assert (sub.status, sub.next_boundary, sub.next_close_at) == (
        SubscriptionStatus.ACTIVE,
        0,
        utc(2024, 4, 1),
    )
    assert [(i.key, i.price_id, i.quantity) for i in sub.items] == [
        ("seat", "basic", 2),
        ("usage:email", "email", 0),
    ]
    draft = _close(sub).draft
    assert draft is not None
    assert [(line.kind, line.amount) for line in draft.lines] == [(InvoiceLineKind.FEE, 2000)]


def test_an_import_bills_nothing_until_the_end_of_the_period_running_at_creation() -> None:
    sub = create_subscription(new("basic", 1, start=utc(2024, 1, 1)), CATALOG, utc(2024, 3, 15))
    assert sub.is_import
    assert (sub.next_boundary, sub.next_close_at) == (3, utc(2024, 4, 1))
    [window] = usage_windows(sub, 3, CATALOG)
    assert (window.start, window.end) == (utc(2024, 3, 1), utc(2024, 4, 1))  # March's usage, from Mar 1
    draft = _close(sub).draft
    assert draft is not None
    assert [(line.kind, line.period.start) for line in draft.lines] == [
        (InvoiceLineKind.USAGE, utc(2024, 3, 1)),
        (InvoiceLineKind.FEE, utc(2024, 4, 1)),
    ]


def test_creation_refuses_bad_input() -> None:
    with pytest.raises(InvalidArgument, match="trial_end"):
        create_subscription(new(trial_end=utc(2024, 3, 1)), CATALOG, utc(2024, 4, 1))
    with pytest.raises(InvalidArgument, match="EUR"):
        create_subscription(new(None, prices=(PriceItem("eur"),)), CATALOG, utc(2024, 4, 1))
    with pytest.raises(FailedPrecondition, match="bills every"):
        create_subscription(new("annual", add_on_ids=("wfm",)), CATALOG, utc(2024, 4, 1))
    with pytest.raises(FailedPrecondition, match="expired"):
        create_subscription(new(coupon_codes=("GONE",)), CATALOG, utc(2024, 4, 1))
    with pytest.raises(FailedPrecondition, match="already applied"):
        create_subscription(new(coupon_codes=("HALF", "HALF")), CATALOG, utc(2024, 4, 1))


def test_a_preview_and_the_change_with_the_same_pinned_time_give_the_same_lines() -> None:
    sub, coverages = _started(2)
    pinned = SubscriptionChange(plan_id="pro", proration_date=utc(2024, 4, 16))
    preview = change_subscription(sub, pinned, CATALOG, coverages, utc(2024, 4, 16, 9))
    applied = change_subscription(sub, pinned, CATALOG, coverages, utc(2024, 4, 16, 10))
    assert preview == applied
    # Basic 2 x 1000 paid; Pro 2 x 3000 for 15 of April's 30 days; Pro includes Workforce (0).
    assert [(line.kind, line.item_key, line.amount) for line in applied.lines] == [
        (InvoiceLineKind.PRORATION_CREDIT, "seat", -1000),
        (InvoiceLineKind.PRORATION_DEBIT, "seat", 3000),
        (InvoiceLineKind.PRORATION_DEBIT, "included:wfm", 0),
    ]
    assert applied.lines[0].proration_factor == Fraction(1, 2)
    assert [c.credited_from for c in applied.credited] == [utc(2024, 4, 16)]
    assert [(c.id, c.net, c.period.start) for c in applied.added] == [
        ("r1:seat", 3000, utc(2024, 4, 16)),
        ("r1:included:wfm", 0, utc(2024, 4, 16)),
    ]
    assert not applied.invoice_now


def test_the_changes_time_must_be_in_the_open_period_and_not_in_the_future() -> None:
    sub, coverages = _started()
    seats = SubscriptionChange(seats=Decimal(2))
    with pytest.raises(InvalidArgument, match="future"):
        change_subscription(
            sub, replace(seats, proration_date=utc(2024, 4, 20)), CATALOG, coverages, utc(2024, 4, 10)
        )
    with pytest.raises(PeriodNotClosed):
        change_subscription(sub, seats, CATALOG, coverages, utc(2024, 5, 1))
    later = change_subscription(sub, seats, CATALOG, coverages, utc(2024, 4, 20)).subscription
    with pytest.raises(FailedPrecondition, match="before the last change"):
        change_subscription(
            later, replace(seats, proration_date=utc(2024, 4, 10)), CATALOG, (), utc(2024, 4, 21)
        )


def test_behaviour_none_changes_the_items_without_lines() -> None:
    sub, coverages = _started()
    change = SubscriptionChange(seats=Decimal(3), proration_behavior=ProrationBehavior.NONE)
    result = change_subscription(sub, change, CATALOG, coverages, utc(2024, 4, 10))
    assert (result.lines, result.credited, result.added) == ((), (), ())
    draft = _close(result.subscription, coverages).draft
    assert draft is not None
    assert [line.amount for line in draft.lines if line.kind is InvoiceLineKind.FEE] == [3000]


def test_always_invoice_asks_for_an_invoice_now() -> None:
    sub, coverages = _started()
    change = SubscriptionChange(seats=Decimal(3), proration_behavior=ProrationBehavior.ALWAYS_INVOICE)
    assert change_subscription(sub, change, CATALOG, coverages, utc(2024, 4, 10)).invoice_now


def test_a_change_during_a_trial_prorates_nothing() -> None:
    sub = create_subscription(new(trial_end=utc(2024, 4, 15)), CATALOG, utc(2024, 4, 1))
    assert sub.status is SubscriptionStatus.TRIALING
    result = change_subscription(sub, SubscriptionChange(seats=Decimal(4)), CATALOG, (), utc(2024, 4, 5))
    assert result.lines == ()
    draft = _close(result.subscription).draft
    assert draft is not None
    assert [(line.quantity, line.amount) for line in draft.lines] == [(4, 4000)]


def test_an_amount_off_coupon_is_split_over_a_changes_debits_and_credits_follow_what_was_paid() -> None:
    sub, coverages = _started(1, coupon_codes=("FLAT",))
    assert [c.net for c in coverages] == [300]  # 1000 - 700
    result = change_subscription(
        sub, SubscriptionChange(seats=Decimal(3)), CATALOG, coverages, utc(2024, 4, 16)
    )
    # Credit: -(300 x 1/2) = -150, never the list price. Debit: 3000 x 1/2 = 1500, less 700.
    assert [(line.amount, line.discount) for line in result.lines] == [(-150, 0), (1500, 700)]


def test_a_once_coupon_never_discounts_a_debit() -> None:
    sub, coverages = _started(1)
    change = SubscriptionChange(seats=Decimal(2), coupon_codes=("ONCE",))
    result = change_subscription(sub, change, CATALOG, coverages, utc(2024, 4, 16))
    assert [line.discount for line in result.lines] == [0, 0]
    draft = _close(result.subscription, coverages + result.added, pending_prorations=result.lines).draft
    assert draft is not None
    # The May 1 closing invoice: the once coupon takes 10% of the fee (2000) only.
    assert [(line.kind, line.discount) for line in draft.lines] == [
        (InvoiceLineKind.USAGE, 0),
        (InvoiceLineKind.FEE, 200),
        (InvoiceLineKind.PRORATION_CREDIT, 0),
        (InvoiceLineKind.PRORATION_DEBIT, 0),
    ]


def test_a_repeating_coupon_ends_n_local_months_after_its_redemption() -> None:
    # Redeemed Jan 31 23:30 UTC = Feb 1 08:30 in Tokyo: it ends May 1 08:30 Tokyo = Apr 30 23:30 UTC.
    sub = create_subscription(
        new(coupon_codes=("THREE",), time_zone="Asia/Tokyo"), CATALOG, utc(2024, 1, 31, 23, 30)
    )
    assert sub.coupons[0].end == utc(2024, 4, 30, 23, 30)


def test_cancel_now_credits_and_makes_the_final_close_due_at_once() -> None:
    sub, coverages = _started(2)
    result = cancel_subscription(sub, CATALOG, coverages, utc(2024, 4, 21), at_period_end=False)
    assert [(line.kind, line.amount) for line in result.lines] == [(InvoiceLineKind.PRORATION_CREDIT, -667)]
    ended = result.subscription
    assert (ended.status, ended.next_close_at) == (SubscriptionStatus.CANCELED, utc(2024, 4, 21))
    final = _close(ended, coverages, pending_prorations=result.lines)
    assert final.draft is not None
    assert [(line.kind, line.period.end, line.amount) for line in final.draft.lines] == [
        (InvoiceLineKind.USAGE, utc(2024, 4, 21), 0),  # usage up to the cancel
        (InvoiceLineKind.PRORATION_CREDIT, utc(2024, 5, 1), -667),  # -(2000 x 10/30)
    ]
    assert final.draft.fee_period is None
    assert (final.subscription.ended_at, final.subscription.next_close_at) == (utc(2024, 4, 21), None)
    with pytest.raises(FailedPrecondition):
        change_subscription(
            final.subscription, SubscriptionChange(seats=Decimal(1)), CATALOG, (), utc(2024, 4, 22)
        )


def test_cancel_at_period_end_ends_at_the_next_boundary_without_fees() -> None:
    sub, coverages = _started()
    result = cancel_subscription(sub, CATALOG, coverages, utc(2024, 4, 10), at_period_end=True)
    assert result.lines == ()
    assert (result.subscription.cancel_at, result.subscription.cancel_at_period_end) == (
        utc(2024, 5, 1),
        True,
    )
    final = _close(result.subscription, coverages)
    assert final.draft is not None
    assert [line.kind for line in final.draft.lines] == [InvoiceLineKind.USAGE]
    assert final.subscription.status is SubscriptionStatus.CANCELED


def test_a_cancel_at_period_end_withdrawn_before_the_end_renews_as_before() -> None:
    sub, coverages = _started()
    canceled = cancel_subscription(sub, CATALOG, coverages, utc(2024, 4, 10), at_period_end=True)
    canceling = canceled.subscription
    resumed = remove_scheduled_cancellation(canceling, utc(2024, 4, 30, 23))
    assert (resumed.cancel_at, resumed.cancel_at_period_end, resumed.canceled_at) == (None, False, None)
    renewal = _close(resumed, coverages)
    assert renewal.draft is not None
    # April's usage in arrears, then May's seat fee in advance (10.00, one basic seat) as if it
    # had never been canceled; a canceled one's last close has the usage line alone (above).
    assert [(line.kind, line.amount) for line in renewal.draft.lines] == [
        (InvoiceLineKind.USAGE, 0),
        (InvoiceLineKind.FEE, 1000),
    ]
    assert renewal.subscription.status is SubscriptionStatus.ACTIVE
    assert remove_scheduled_cancellation(resumed, utc(2024, 4, 30)) is resumed  # nothing pending
    with pytest.raises(FailedPrecondition, match="ended at 2024-05-01"):
        remove_scheduled_cancellation(canceling, utc(2024, 5, 1))  # the end has come


def test_a_scheduled_change_applies_at_the_boundary_without_proration() -> None:
    sub, coverages = _started(2, plan="pro")
    scheduled = schedule_change(sub, SubscriptionChange(plan_id="basic"), CATALOG, utc(2024, 4, 10))
    closed = _close(scheduled, coverages)
    assert closed.draft is not None
    # April's usage is Pro's chat price; May's fees are Basic's, with no proration line.
    assert [(line.kind, line.price_id, line.amount) for line in closed.draft.lines] == [
        (InvoiceLineKind.USAGE, "chat", 0),
        (InvoiceLineKind.FEE, "basic", 2000),
    ]
    assert closed.subscription.plan_id == "basic"
    assert closed.subscription.scheduled_change is None


def test_an_included_add_on_is_a_zero_line_marked_included() -> None:
    sub = create_subscription(new("pro", 1), CATALOG, utc(2024, 4, 1))
    draft = _close(sub).draft
    assert draft is not None
    assert [(line.item_key, line.amount, line.included) for line in draft.lines] == [
        ("seat", 3000, False),
        ("included:wfm", 0, True),
    ]


def test_a_plan_change_splits_the_usage_windows_at_the_change() -> None:
    sub, coverages = _started(1)
    changed = change_subscription(
        sub, SubscriptionChange(plan_id="pro"), CATALOG, coverages, utc(2024, 4, 11)
    )
    windows = usage_windows(changed.subscription, 1, CATALOG)
    # Lines and windows are ordered by item key (billing-rules.md §3): usage:chat, usage:email.
    assert [(w.filters, w.start, w.end) for w in windows] == [
        ((("channel", "chat"),), utc(2024, 4, 11), utc(2024, 5, 1)),
        ((("channel", "email"),), utc(2024, 4, 1), utc(2024, 4, 11)),
    ]


def test_add_ons_are_added_and_removed_with_proration() -> None:
    sub, coverages = _started(1)
    added = change_subscription(
        sub, SubscriptionChange(add_ons_added=("wfm",)), CATALOG, coverages, utc(2024, 4, 16)
    )
    assert [(line.item_key, line.amount) for line in added.lines] == [("add_on:wfm", 250)]  # 500 x 1/2
    removed = change_subscription(
        added.subscription,
        SubscriptionChange(add_ons_removed=("wfm",)),
        CATALOG,
        coverages + added.added,
        utc(2024, 4, 16) + timedelta(days=5),
    )
    # The 250 debit covered Apr 16 - May 1 (15 days); 10 of them are left: -(250 x 10/15) = -166.67.
    assert [(line.item_key, line.amount) for line in removed.lines] == [("add_on:wfm", -167)]
    with pytest.raises(InvalidArgument, match="not on it"):
        change_subscription(
            sub, SubscriptionChange(add_ons_removed=("wfm",)), CATALOG, coverages, utc(2024, 4, 2)
        )
