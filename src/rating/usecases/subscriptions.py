"""Subscription use cases: create, change (and its preview), cancel, schedule (docs/billing-rules.md).

The domain decides every number; these functions load what it needs, call it, and store what it
returns. ``preview_change`` and ``change`` share ``_change_result``: the preview is the change
without the writes, so with the same pinned proration time both give the same lines.

"Now" is the customer's: its test clock's time when it has one, the real time otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from billing.domain.catalog import Catalog, Interval
from billing.domain.customer import Customer
from billing.domain.errors import FailedPrecondition, InvalidArgument
from billing.domain.invoices import proration_invoice
from billing.domain.periods import shift_local
from billing.domain.subscriptions import (
    ChangeResult,
    Coverage,
    NewSubscription,
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
from rating.usecases.billing_ports import BillingUnitOfWork, SubscriptionRow


@dataclass(frozen=True, slots=True)
class Applied:
    """A stored change: the subscription after it, its lines, and the invoice of an
    ``always_invoice`` change."""

    row: SubscriptionRow
    result: ChangeResult
    invoice_id: str | None = None


async def customer_now(uow: BillingUnitOfWork, customer: Customer, real_now: datetime) -> datetime:
    if customer.test_clock_id is None:
        return real_now
    return await uow.test_clocks.time_of(customer.test_clock_id)


async def create(
    uow: BillingUnitOfWork, new: NewSubscription, trial_days: int, catalog: Catalog, real_now: datetime
) -> SubscriptionRow:
    """``new`` without id, currency and time zone: they come from here and from the customer.

    ``trial_days`` counts local days in the customer's zone from the start (a day across a DST
    change lasts 23 or 25 hours), like the billing periods do.
    """
    customer = await uow.entities.get(Customer, new.customer_id)
    now = await customer_now(uow, customer, real_now)
    trial_end = new.trial_end
    if trial_days:
        trial_end = shift_local(new.start or now, customer.time_zone, Interval.DAY, trial_days)
    sub = create_subscription(
        dataclasses.replace(
            new,
            id=uow.new_id("sub"),
            currency=customer.currency,
            time_zone=customer.time_zone,
            trial_end=trial_end,
        ),
        catalog,
        now,
    )
    await uow.subscriptions.redeem_coupons([c.coupon_id for c in sub.coupons])
    return await uow.subscriptions.add(sub)


async def preview_change(
    uow: BillingUnitOfWork,
    subscription_id: str,
    change: SubscriptionChange,
    catalog: Catalog,
    real_now: datetime,
) -> ChangeResult:
    _, result = await _change_result(
        uow, subscription_id, catalog, real_now, False, _changer(change, catalog)
    )
    return result


async def change(
    uow: BillingUnitOfWork,
    subscription_id: str,
    change: SubscriptionChange,
    catalog: Catalog,
    real_now: datetime,
) -> Applied:
    row, result = await _change_result(
        uow, subscription_id, catalog, real_now, True, _changer(change, catalog)
    )
    redeemed_before = {c.coupon_id for c in row.state.coupons}
    await uow.subscriptions.redeem_coupons(
        [c.coupon_id for c in result.subscription.coupons if c.coupon_id not in redeemed_before]
    )
    return await _store(uow, row, result, catalog, real_now)


async def cancel(
    uow: BillingUnitOfWork,
    subscription_id: str,
    catalog: Catalog,
    real_now: datetime,
    *,
    at_period_end: bool,
    behavior: ProrationBehavior,
    cancel_time: datetime | None,
) -> Applied:
    async def run(sub: Subscription, coverages: Sequence[Coverage], now: datetime) -> ChangeResult:
        return cancel_subscription(
            sub,
            catalog,
            coverages,
            now,
            at_period_end=at_period_end,
            behavior=behavior,
            proration_date=cancel_time,
        )

    row, result = await _change_result(uow, subscription_id, catalog, real_now, True, run)
    return await _store(uow, row, result, catalog, real_now)


async def schedule(
    uow: BillingUnitOfWork,
    subscription_id: str,
    change: SubscriptionChange | None,
    catalog: Catalog,
    real_now: datetime,
) -> SubscriptionRow:
    """Schedule ``change`` for the end of the current period; None clears a scheduled change."""
    row = await uow.subscriptions.get(subscription_id, for_update=True)
    sub: Subscription = row.state
    _check_live(sub)
    if change is None:
        updated = dataclasses.replace(sub, scheduled_change=None)
    else:
        customer = await uow.entities.get(Customer, sub.customer_id)
        updated = schedule_change(sub, change, catalog, await customer_now(uow, customer, real_now))
    return await uow.subscriptions.save(row, updated)


async def remove_cancellation(
    uow: BillingUnitOfWork, subscription_id: str, real_now: datetime
) -> SubscriptionRow:
    """Withdraw a pending cancel at period end, in the customer's time (a test clock's)."""
    row = await uow.subscriptions.get(subscription_id, for_update=True)
    sub: Subscription = row.state
    _check_live(sub)
    customer = await uow.entities.get(Customer, sub.customer_id)
    updated = remove_scheduled_cancellation(sub, await customer_now(uow, customer, real_now))
    return row if updated is sub else await uow.subscriptions.save(row, updated)


async def retry_parked(uow: BillingUnitOfWork, subscription_id: str) -> SubscriptionRow:
    """Put a parked subscription back in the invoicer's queue (support fixed the cause)."""
    row = await uow.subscriptions.get(subscription_id, for_update=True)
    if row.parked_reason is None:
        raise FailedPrecondition(f"subscription {subscription_id!r} is not parked")
    await uow.subscriptions.unpark(subscription_id)
    return await uow.subscriptions.get(subscription_id)


async def open_usage_period(
    uow: BillingUnitOfWork, customer_id: str, subscription_id: str | None
) -> tuple[datetime, datetime]:
    """The range a usage summary defaults to: the open period of the named subscription of the
    customer, or of its only live one (with several, which one is meant is not a guess)."""
    if subscription_id is not None:
        sub: Subscription = (await uow.subscriptions.get(subscription_id)).state
        if sub.customer_id != customer_id:
            raise InvalidArgument.single("subscription", "is not a subscription of this customer")
    else:
        live: list[Subscription] = []
        after: str | None = None
        while rows := await uow.subscriptions.find(
            customer_id=customer_id, status=None, after=after, limit=100
        ):
            live += [row.state for row in rows if row.state.ended_at is None]
            after = rows[-1].state.id
        if len(live) != 1:
            raise FailedPrecondition(
                f"the customer has {len(live)} live subscriptions: name one in subscription, "
                "or send start_time and end_time"
            )
        sub = live[0]
    period = sub.open_usage_period
    return period.start, period.end


Run = Callable[[Subscription, Sequence[Coverage], datetime], Awaitable[ChangeResult]]


def _changer(change: SubscriptionChange, catalog: Catalog) -> Run:
    async def run(sub: Subscription, coverages: Sequence[Coverage], now: datetime) -> ChangeResult:
        return change_subscription(sub, change, catalog, coverages, now)

    return run


async def _change_result(
    uow: BillingUnitOfWork, subscription_id: str, catalog: Catalog, real_now: datetime, lock: bool, run: Run
) -> tuple[SubscriptionRow, ChangeResult]:
    row = await uow.subscriptions.get(subscription_id, for_update=lock)
    sub: Subscription = row.state
    _check_live(sub)
    customer = await uow.entities.get(Customer, sub.customer_id)
    now = await customer_now(uow, customer, real_now)
    coverages = await uow.subscriptions.coverages(sub)
    return row, await run(sub, coverages, now)


def _check_live(sub: Subscription) -> None:
    if sub.status is SubscriptionStatus.CANCELED or sub.ended_at is not None:
        raise FailedPrecondition(f"subscription {sub.id!r} is canceled")


async def _store(
    uow: BillingUnitOfWork, row: SubscriptionRow, result: ChangeResult, catalog: Catalog, real_now: datetime
) -> Applied:
    sub = result.subscription
    saved = await uow.subscriptions.save(row, sub)
    await uow.subscriptions.save_coverages(sub.id, [*result.credited, *result.added])
    if not result.lines:
        return Applied(saved, result)
    if not result.invoice_now:
        await uow.subscriptions.add_pending(sub.id, result.lines)
        return Applied(saved, result)
    customer = await uow.entities.get(Customer, sub.customer_id)
    billing_customer, balance = await uow.subscriptions.billing_customer(sub.customer_id)
    at = result.lines[0].at or await customer_now(uow, customer, real_now)
    draft = proration_invoice(sub, result.lines, catalog, billing_customer, at, balance)
    invoice_id = await uow.subscriptions.invoice_now(sub, draft, customer.test_clock_id)
    return Applied(saved, result, invoice_id)
