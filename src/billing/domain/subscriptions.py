"""Subscriptions and their changes: items over time, coupons, proration (docs/billing-rules.md §2, §4, §5).

A ``Subscription`` is an immutable value; every operation returns a new one. Units: quantities
are exact Decimals, amounts int minor units, instants aware UTC datetimes. Nothing here reads a
clock: the caller passes ``as_of`` (now) and, for a change, an optional pinned proration time.

The subscription's boundaries are its cycle's boundaries clamped to its life:
``boundary(k) = min(max(cycle.boundary(k), billing_start), cancel_at)``, so a partial first
calendar period starts at ``billing_start`` and a cancel now makes ``cancel_at`` the boundary of
the final invoice. ``next_boundary`` is the index of the next boundary to close; the close of
boundary ``k`` bills usage for ``[boundary(k-1), boundary(k))`` and fees for
``[boundary(k), boundary(k+1))``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from billing.domain.catalog import Catalog, Coupon
from billing.domain.errors import FailedPrecondition
from billing.domain.lines import InvoiceLine
from billing.domain.periods import AnchorMode, BillingCycle, Period
from billing.domain.proration import ProrationPolicy

_ONE = Decimal(1)


class SubscriptionStatus(enum.Enum):
    TRIALING = "trialing"
    ACTIVE = "active"
    CANCELED = "canceled"


class ProrationBehavior(enum.Enum):
    CREATE_PRORATIONS = "create_prorations"  # pending lines on the next invoice
    ALWAYS_INVOICE = "always_invoice"  # the same lines, invoiced at once on their own invoice
    NONE = "none"  # no lines; the new items are billed from the next period


class TrialEndBehavior(enum.Enum):
    CREATE_INVOICE = "create_invoice"  # bill at the trial's end whatever the payment method
    CANCEL = "cancel"  # cancel at the trial's end when the customer has no payment method


class ItemKind(enum.Enum):
    SEAT = "seat"  # the plan's seat price, quantity = seats
    ADD_ON = "add_on"  # a purchased add-on, or one included in the plan (``included``)
    USAGE = "usage"  # a price bound to a meter, billed in arrears
    PRICE = "price"  # a licensed price sold directly, without a plan


@dataclass(frozen=True, slots=True)
class Item:
    """A price at a quantity over ``[valid_from, valid_to)`` (``valid_to`` None: open).

    ``key`` identifies the item across changes: ``seat``, ``add_on:<add-on id>``,
    ``included:<add-on id>``, ``price:<price id>``, ``usage:<price id>``. A change that alters an
    item's price or quantity ends it and starts a new item with the same key.
    """

    key: str
    kind: ItemKind
    price_id: str
    quantity: Decimal
    valid_from: datetime
    valid_to: datetime | None = None
    included: bool = False

    @property
    def licensed(self) -> bool:
        """Billed in advance (seats, add-ons, direct prices), not in arrears."""
        return self.kind is not ItemKind.USAGE

    def valid_at(self, instant: datetime) -> bool:
        return self.valid_from <= instant and (self.valid_to is None or instant < self.valid_to)


@dataclass(frozen=True, slots=True)
class AppliedCoupon:
    """A coupon redeemed on the subscription at ``redeemed_at``.

    ``end``: for a repeating coupon, ``redeemed_at`` plus its months on the local calendar (it
    applies to discount dates in ``[redeemed_at, end)``). ``used_up``: a ``once`` coupon after
    its first closing invoice, or a repeating one past its end.
    """

    coupon_id: str
    redeemed_at: datetime
    end: datetime | None = None
    used_up: bool = False


@dataclass(frozen=True, slots=True)
class Coverage:
    """A fee line or proration debit that paid for an item over ``period``; what a later change credits.

    ``net`` is what that line charged after its discounts (before tax). ``credited_from`` is the
    instant from which a change has credited it (None: not credited). ``id`` is deterministic
    (``b<k>:<item key>`` for the fee of boundary k, ``r<revision>:<item key>`` for the debit
    of a change), so re-running a close yields the same ids.
    """

    id: str
    item_key: str
    price_id: str
    quantity: Decimal
    period: Period
    net: int
    credited_from: datetime | None = None

    def covers(self, instant: datetime) -> bool:
        return self.credited_from is None and self.period.contains(instant)


@dataclass(frozen=True, slots=True)
class PriceItem:
    """A price sold directly on a subscription (licensed, or usage when the price has a meter)."""

    price_id: str
    quantity: Decimal = _ONE


@dataclass(frozen=True, slots=True)
class SubscriptionChange:
    """What to change; None or empty leaves that part as it is.

    ``prices``, when given, replaces the set of directly sold prices. ``coupon_codes`` are
    redeemed at the change's instant and apply from then on. ``proration_date`` pins the
    change's instant (a preview and the change itself with the same pin give the same lines);
    without it the change happens at ``as_of``.
    """

    plan_id: str | None = None
    seats: Decimal | None = None
    add_ons_added: tuple[str, ...] = ()
    add_ons_removed: tuple[str, ...] = ()
    prices: tuple[PriceItem, ...] | None = None
    coupon_codes: tuple[str, ...] = ()
    proration_behavior: ProrationBehavior = ProrationBehavior.CREATE_PRORATIONS
    proration_date: datetime | None = None


@dataclass(frozen=True, slots=True)
class NewSubscription:
    """The request to create a subscription. ``start`` None means ``created_at``; a start before
    the creation instant imports a subscription already paid elsewhere (billing-rules.md §2)."""

    id: str
    customer_id: str
    currency: str
    time_zone: str
    plan_id: str | None = None
    seats: Decimal = _ONE
    add_on_ids: tuple[str, ...] = ()
    prices: tuple[PriceItem, ...] = ()
    coupon_codes: tuple[str, ...] = ()
    start: datetime | None = None
    trial_end: datetime | None = None
    trial_end_behavior: TrialEndBehavior = TrialEndBehavior.CREATE_INVOICE
    anchor_mode: AnchorMode = AnchorMode.ANNIVERSARY
    proration_policy: ProrationPolicy = ProrationPolicy.PER_SECOND


@dataclass(frozen=True)
class Subscription:
    """A subscription's whole state. ``items`` holds every item still needed: those valid in the
    period not yet closed and later; a close drops the ones that ended before its boundary.

    ``cancel_at``: the instant it ends (now for a cancel now, the period end for a cancel at
    period end); ``ended_at`` is set by the close of that boundary, after which nothing is due.
    ``scheduled_change`` applies at the next boundary, without proration.
    """

    id: str
    customer_id: str
    currency: str
    time_zone: str
    plan_id: str | None
    seats: Decimal
    add_on_ids: tuple[str, ...]
    prices: tuple[PriceItem, ...]
    items: tuple[Item, ...]
    coupons: tuple[AppliedCoupon, ...]
    cycle: BillingCycle
    proration_policy: ProrationPolicy
    start: datetime
    created_at: datetime
    trial_end: datetime | None
    trial_end_behavior: TrialEndBehavior
    status: SubscriptionStatus
    next_boundary: int
    cancel_at: datetime | None = None
    cancel_at_period_end: bool = False
    canceled_at: datetime | None = None
    ended_at: datetime | None = None
    scheduled_change: SubscriptionChange | None = None
    revision: int = 0

    @property
    def billing_start(self) -> datetime:
        """Where billing begins: the trial's end, or the start."""
        return self.trial_end if self.trial_end is not None else self.start

    @property
    def first_index(self) -> int:
        """The index of the boundary at ``billing_start``."""
        return self.cycle.index_at(self.billing_start)

    @property
    def is_import(self) -> bool:
        """Billing began before the subscription was created: paid elsewhere until then."""
        return self.billing_start < self.created_at

    def boundary(self, k: int) -> datetime:
        instant = max(self.cycle.boundary(k), self.billing_start)
        if self.cancel_at is not None:
            instant = min(instant, self.cancel_at)
        return instant

    def period(self, k: int) -> Period:
        """``[boundary(k), boundary(k+1))``: what the fees of the close of ``k`` pay for."""
        return Period(self.boundary(k), self.boundary(k + 1))

    @property
    def next_close_at(self) -> datetime | None:
        """When the next close is due; None once the subscription has ended."""
        return None if self.ended_at is not None else self.boundary(self.next_boundary)

    @property
    def current_period(self) -> Period:
        """The period a change now would prorate over: the one ending at the next boundary."""
        return Period(self.boundary(self.next_boundary - 1), self.boundary(self.next_boundary))


@dataclass(frozen=True, slots=True)
class ChangeResult:
    """What a change (or a cancel) does, for both the preview and the real change.

    ``lines``: proration credits and debits (discounted debits, undiscounted credits), pending
    for the next invoice unless ``invoice_now`` (``always_invoice``). ``credited``: the
    coverages the credits consumed, with ``credited_from`` set; ``added``: the coverages of
    the debits.
    """

    subscription: Subscription
    lines: tuple[InvoiceLine, ...]
    credited: tuple[Coverage, ...]
    added: tuple[Coverage, ...]
    invoice_now: bool


class PeriodNotClosed(FailedPrecondition):
    """A change at or after a boundary that has not been closed yet: close it first."""


def create_subscription(new: NewSubscription, catalog: Catalog, created_at: datetime) -> Subscription:
    """Validate ``new`` against ``catalog`` and build the subscription's first state."""
    raise NotImplementedError


def change_subscription(
    sub: Subscription,
    change: SubscriptionChange,
    catalog: Catalog,
    coverages: Sequence[Coverage],
    as_of: datetime,
) -> ChangeResult:
    """Apply ``change`` at its proration time (pinned, or ``as_of``). Used by preview and apply."""
    raise NotImplementedError


def cancel_subscription(
    sub: Subscription,
    catalog: Catalog,
    coverages: Sequence[Coverage],
    as_of: datetime,
    *,
    at_period_end: bool,
    behavior: ProrationBehavior = ProrationBehavior.CREATE_PRORATIONS,
    proration_date: datetime | None = None,
) -> ChangeResult:
    """Cancel at period end (nothing now) or now (credits for licensed items, final close due now)."""
    raise NotImplementedError


def schedule_change(
    sub: Subscription, change: SubscriptionChange, catalog: Catalog, as_of: datetime
) -> Subscription:
    """Validate ``change`` now and apply it at the next boundary, without proration."""
    raise NotImplementedError


def coupon_applies(applied: AppliedCoupon, coupon: Coupon, date: datetime, *, debit: bool) -> bool:
    """Whether ``applied`` discounts a line whose discount date is ``date`` (billing-rules.md §5)."""
    raise NotImplementedError
