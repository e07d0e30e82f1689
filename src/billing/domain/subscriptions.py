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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import TypeVar

from billing.domain.catalog import Catalog, Coupon, CouponDuration, Interval, Price
from billing.domain.discounts import Discountable, check_redeemable, discount_lines
from billing.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from billing.domain.lines import InvoiceLine, InvoiceLineKind, LineDiscount
from billing.domain.money import round_fraction
from billing.domain.periods import AnchorMode, BillingCycle, Period, shift_local, zone
from billing.domain.pricing import Charge, Usage
from billing.domain.proration import ProrationPolicy, factor

_ONE = Decimal(1)
_T = TypeVar("_T")


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
    def open_usage_period(self) -> Period:
        """The period whose usage the next close bills in arrears (before the first close, the
        first period): what "current usage" means to support."""
        k = max(self.next_boundary, 1)
        return Period(self.boundary(k - 1), self.boundary(k))

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
    """Validate ``new`` against ``catalog`` and build the subscription's first state.

    Coupons are redeemed at ``created_at``. The first boundary to close is the billing start,
    or, for an import, the end of the period containing ``created_at`` (billing-rules.md §2).
    """
    zone(new.time_zone)
    start = new.start or created_at
    if new.trial_end is not None and new.trial_end <= start:
        raise InvalidArgument.single("trial_end", "must be after the start")
    if new.plan_id is not None:
        plan = _found("plan", lambda: catalog.plan(new.plan_id or ""))
        _require_active(plan.active, "plan", f"plan {plan.id!r} is archived")
    for index, addon_id in enumerate(new.add_on_ids):
        addon = _found(f"add_on_ids[{index}]", lambda: catalog.addon(addon_id))  # noqa: B023
        _require_active(addon.active, f"add_on_ids[{index}]", f"add-on {addon_id!r} is archived")
    for index, item in enumerate(new.prices):
        price = _found(f"prices[{index}]", lambda: catalog.price(item.price_id))  # noqa: B023
        _require_active(price.active, f"prices[{index}]", f"price {price.id!r} is archived")
    config = _configuration(catalog, new.currency, new.plan_id, new.seats, new.add_on_ids, new.prices)
    interval, count = _interval(config, catalog, None)
    if new.anchor_mode is AnchorMode.CALENDAR and count != 1:
        raise InvalidArgument.single("anchor_mode", "calendar alignment needs prices billed every 1 interval")
    billing_start = new.trial_end if new.trial_end is not None else start
    cycle = BillingCycle(interval, count, billing_start, new.time_zone, new.anchor_mode)
    items = tuple(
        Item(key, slot.kind, slot.price_id, slot.quantity, start, None, slot.included)
        for key, slot in config.items()
    )
    coupons = _redeem(new.coupon_codes, (), catalog, new.currency, new.time_zone, created_at, created_at)
    trialing = new.trial_end is not None and new.trial_end > created_at
    first = cycle.index_at(billing_start)
    next_boundary = cycle.index_at(created_at) + 1 if billing_start < created_at else first
    return Subscription(
        id=new.id,
        customer_id=new.customer_id,
        currency=new.currency,
        time_zone=new.time_zone,
        plan_id=new.plan_id,
        seats=new.seats,
        add_on_ids=new.add_on_ids,
        prices=new.prices,
        items=items,
        coupons=coupons,
        cycle=cycle,
        proration_policy=new.proration_policy,
        start=start,
        created_at=created_at,
        trial_end=new.trial_end,
        trial_end_behavior=new.trial_end_behavior,
        status=SubscriptionStatus.TRIALING if trialing else SubscriptionStatus.ACTIVE,
        next_boundary=max(next_boundary, first),
    )


def change_subscription(
    sub: Subscription,
    change: SubscriptionChange,
    catalog: Catalog,
    coverages: Sequence[Coverage],
    as_of: datetime,
) -> ChangeResult:
    """Apply ``change`` at its proration time (pinned, or ``as_of``). Used by preview and apply.

    Items whose price or quantity changes end at ``t`` and restart with the new values; the
    licensed ones get a credit per coverage covering ``t`` and a debit for the new values
    (billing-rules.md §4), unless the behaviour is ``none`` or ``t`` is before the billing start.
    """
    t = change.proration_date or as_of
    _check_change_time(sub, t, as_of)
    plan_id, seats, add_on_ids, prices = _changed_parts(sub, change, catalog)
    config = _configuration(catalog, sub.currency, plan_id, seats, add_on_ids, prices)
    _interval(config, catalog, sub.cycle)
    coupons = _redeem(change.coupon_codes, sub.coupons, catalog, sub.currency, sub.time_zone, t, as_of)
    items, changed = _switch_items(sub.items, config, t)
    after = replace(
        sub,
        plan_id=plan_id,
        seats=seats,
        add_on_ids=add_on_ids,
        prices=prices,
        items=items,
        coupons=coupons,
        revision=sub.revision + 1,
    )
    if change.proration_behavior is ProrationBehavior.NONE or t < sub.billing_start:
        return ChangeResult(after, (), (), (), False)
    old = {item.key: item for item in sub.items if item.valid_at(t)}
    lines, credited, added = _prorate(after, changed, old, config, coverages, catalog, t)
    invoice_now = change.proration_behavior is ProrationBehavior.ALWAYS_INVOICE and bool(lines)
    return ChangeResult(after, lines, credited, added, invoice_now)


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
    """Cancel at period end (nothing now) or now at ``t`` (pinned, or ``as_of``).

    A cancel now credits every licensed item's coverage from ``t`` (unless ``none``) and makes
    ``t`` the next boundary: its close, due at once, is the final invoice with usage up to ``t``
    and every pending line. The caller invoices that close; ``invoice_now`` stays False.
    """
    if at_period_end:
        _check_change_time(sub, as_of, as_of)
        end = sub.boundary(sub.next_boundary)
        after = replace(sub, cancel_at=end, cancel_at_period_end=True, canceled_at=as_of)
        return ChangeResult(after, (), (), (), False)
    t = proration_date or as_of
    _check_change_time(sub, t, as_of)
    items, changed = _switch_items(sub.items, {}, t)
    after = replace(
        sub,
        items=items,
        cancel_at=t,
        cancel_at_period_end=False,
        canceled_at=as_of,
        status=SubscriptionStatus.CANCELED,
        scheduled_change=None,
        revision=sub.revision + 1,
    )
    if behavior is ProrationBehavior.NONE or t < sub.billing_start:
        return ChangeResult(after, (), (), (), False)
    old = {item.key: item for item in sub.items if item.valid_at(t)}
    lines, credited, added = _prorate(after, changed, old, {}, coverages, catalog, t)
    return ChangeResult(after, lines, credited, added, False)


def remove_scheduled_cancellation(sub: Subscription, as_of: datetime) -> Subscription:
    """Withdraw a cancel at period end (Stripe: ``cancel_at_period_end=false``) while the period
    it ends has not ended: the subscription renews as before. Nothing pending: unchanged."""
    if not sub.cancel_at_period_end:
        return sub
    if sub.cancel_at is not None and as_of >= sub.cancel_at:
        raise FailedPrecondition(f"subscription {sub.id!r} ended at {sub.cancel_at.isoformat()}")
    return replace(sub, cancel_at=None, cancel_at_period_end=False, canceled_at=None)


def schedule_change(
    sub: Subscription, change: SubscriptionChange, catalog: Catalog, as_of: datetime
) -> Subscription:
    """Validate ``change`` now and apply it at the next boundary, without proration.

    A later schedule replaces an earlier one. Its coupons are checked now and redeemed at the
    boundary.
    """
    _check_change_time(sub, as_of, as_of)
    plan_id, seats, add_on_ids, prices = _changed_parts(sub, change, catalog)
    config = _configuration(catalog, sub.currency, plan_id, seats, add_on_ids, prices)
    _interval(config, catalog, sub.cycle)
    _redeem(change.coupon_codes, sub.coupons, catalog, sub.currency, sub.time_zone, as_of, as_of)
    return replace(sub, scheduled_change=change)


def apply_scheduled_change(sub: Subscription, catalog: Catalog, at: datetime) -> Subscription:
    """The subscription with its scheduled change applied at the boundary ``at`` (used by the close)."""
    change = sub.scheduled_change
    if change is None:
        return sub
    plan_id, seats, add_on_ids, prices = _changed_parts(sub, change, catalog)
    config = _configuration(catalog, sub.currency, plan_id, seats, add_on_ids, prices)
    coupons = sub.coupons + tuple(
        _applied(catalog.coupon_by_code(code), at, sub.time_zone) for code in change.coupon_codes
    )
    items, _ = _switch_items(sub.items, config, at)
    return replace(
        sub,
        plan_id=plan_id,
        seats=seats,
        add_on_ids=add_on_ids,
        prices=prices,
        items=items,
        coupons=coupons,
        scheduled_change=None,
        revision=sub.revision + 1,
    )


def coupon_applies(applied: AppliedCoupon, coupon: Coupon, date: datetime, *, debit: bool) -> bool:
    """Whether ``applied`` discounts a line whose discount date is ``date`` (billing-rules.md §5).

    ``debit``: the line is a proration debit, which a ``once`` coupon never discounts.
    """
    if applied.used_up or date < applied.redeemed_at:
        return False
    match coupon.duration:
        case CouponDuration.ONCE:
            return not debit
        case CouponDuration.REPEATING:
            return applied.end is None or date < applied.end
        case CouponDuration.FOREVER:
            return True


def discount(
    lines: Sequence[InvoiceLine],
    coupons: Iterable[AppliedCoupon],
    catalog: Catalog,
    date: datetime,
    *,
    debit: bool,
) -> list[InvoiceLine]:
    """``lines`` with the discounts of the coupons active at ``date``, in order of redemption,
    each coupon on what the previous ones left (the quote's rule, ``discounts.discount_lines``)."""
    remaining = [line.amount for line in lines]
    cuts: list[list[LineDiscount]] = [list(line.discounts) for line in lines]
    for applied in coupons:
        coupon = catalog.coupons[applied.coupon_id]
        if not coupon_applies(applied, coupon, date, debit=debit):
            continue
        owed = [Discountable(line.product_id, left) for line, left in zip(lines, remaining, strict=True)]
        for index, cut in enumerate(discount_lines(coupon, owed)):
            if cut:
                cuts[index].append(LineDiscount(coupon.id, cut))
                remaining[index] -= cut
    return [replace(line, discounts=tuple(c)) for line, c in zip(lines, cuts, strict=True)]


def full_charge(price: Price, quantity: Decimal, included: bool) -> Charge:
    """The full-period charge of a licensed item; an included add-on charges 0."""
    if included:
        return Charge(quantity=quantity, amount=Decimal(0), unit_amount=Decimal(0))
    return price.model.charge(Usage(quantity))


_KIND_ORDER = {ItemKind.SEAT: 0, ItemKind.ADD_ON: 1, ItemKind.PRICE: 2, ItemKind.USAGE: 3}


def item_order(item: Item) -> tuple[int, str, datetime]:
    """The order of lines within a group on an invoice: seat, add-ons, prices; by key; by start."""
    return (_KIND_ORDER[item.kind], item.key, item.valid_from)


@dataclass(frozen=True, slots=True)
class _Slot:
    kind: ItemKind
    price_id: str
    quantity: Decimal
    included: bool = False


def _configuration(
    catalog: Catalog,
    currency: str,
    plan_id: str | None,
    seats: Decimal,
    add_on_ids: Sequence[str],
    prices: Sequence[PriceItem],
) -> dict[str, _Slot]:
    """The items a subscription should have, by key."""
    config: dict[str, _Slot] = {}
    if seats < 0:
        raise InvalidArgument.single("seats", "must not be negative")
    if plan_id is not None:
        plan = _found("plan", lambda: catalog.plan(plan_id))
        if plan.seat_price_id:
            config["seat"] = _Slot(ItemKind.SEAT, plan.seat_price_id, seats)
        for price_id in plan.usage_price_ids:
            config[f"usage:{price_id}"] = _Slot(ItemKind.USAGE, price_id, Decimal(0))
        for addon_id in plan.included_addon_ids:
            addon = catalog.addon(addon_id)
            config[f"included:{addon_id}"] = _Slot(ItemKind.ADD_ON, addon.price_id, Decimal(1), True)
    if len(set(add_on_ids)) != len(add_on_ids):
        raise InvalidArgument.single("add_on_ids", "an add-on is listed twice")
    for index, addon_id in enumerate(add_on_ids):
        addon = _found(f"add_on_ids[{index}]", lambda: catalog.addon(addon_id))  # noqa: B023
        config[f"add_on:{addon_id}"] = _Slot(ItemKind.ADD_ON, addon.price_id, Decimal(1))
    for index, item in enumerate(prices):
        price = _found(f"prices[{index}]", lambda: catalog.price(item.price_id))  # noqa: B023
        if item.quantity < 0:
            raise InvalidArgument.single(f"prices[{index}].quantity", "must not be negative")
        key = f"usage:{price.id}" if price.is_usage else f"price:{price.id}"
        if key in config and not price.is_usage:
            raise InvalidArgument.single(f"prices[{index}]", f"price {price.id!r} is listed twice")
        kind = ItemKind.USAGE if price.is_usage else ItemKind.PRICE
        config[key] = _Slot(kind, price.id, Decimal(0) if price.is_usage else item.quantity)
    if not config:
        raise InvalidArgument.single("plan", "a subscription needs a plan or prices")
    for key, slot in config.items():
        price = catalog.price(slot.price_id)
        if price.currency != currency:
            raise InvalidArgument.single(
                "currency",
                f"{key}: price {price.id!r} is in {price.currency}, the subscription in {currency}",
            )
    return config


def _interval(config: dict[str, _Slot], catalog: Catalog, cycle: BillingCycle | None) -> tuple[Interval, int]:
    """The one (interval, count) every price of ``config`` bills at; a cycle's, when given."""
    expected = (cycle.interval, cycle.interval_count) if cycle is not None else None
    for key, slot in config.items():
        price = catalog.price(slot.price_id)
        if price.recurring is None:
            raise InvalidArgument.single("prices", f"{key}: price {price.id!r} is not recurring")
        found = (price.recurring.interval, price.recurring.interval_count)
        if expected is None:
            expected = found
        elif found != expected:
            # NOTE: Stripe resets the billing anchor on an interval change; we refuse it instead.
            raise FailedPrecondition(
                f"{key}: price {price.id!r} bills every {found[1]} {found[0].value}, "
                f"the subscription every {expected[1]} {expected[0].value}"
            )
    assert expected is not None
    return expected


def _changed_parts(
    sub: Subscription, change: SubscriptionChange, catalog: Catalog
) -> tuple[str | None, Decimal, tuple[str, ...], tuple[PriceItem, ...]]:
    plan_id = sub.plan_id
    if change.plan_id is not None and change.plan_id != sub.plan_id:
        plan = _found("plan_id", lambda: catalog.plan(change.plan_id or ""))
        _require_active(plan.active, "plan_id", f"plan {plan.id!r} is archived")
        plan_id = plan.id
    seats = sub.seats if change.seats is None else change.seats
    add_on_ids = list(sub.add_on_ids)
    for index, addon_id in enumerate(change.add_ons_removed):
        if addon_id not in add_on_ids:
            raise InvalidArgument.single(f"add_ons_removed[{index}]", f"add-on {addon_id!r} is not on it")
        add_on_ids.remove(addon_id)
    for index, addon_id in enumerate(change.add_ons_added):
        addon = _found(f"add_ons_added[{index}]", lambda: catalog.addon(addon_id))  # noqa: B023
        _require_active(addon.active, f"add_ons_added[{index}]", f"add-on {addon_id!r} is archived")
        if addon_id in add_on_ids:
            raise FailedPrecondition(f"add_ons_added[{index}]: add-on {addon_id!r} is already on it")
        add_on_ids.append(addon_id)
    prices = sub.prices
    if change.prices is not None:
        known = {item.price_id for item in sub.prices}
        for index, item in enumerate(change.prices):
            if item.price_id not in known:
                price = _found(f"prices[{index}]", lambda: catalog.price(item.price_id))  # noqa: B023
                _require_active(price.active, f"prices[{index}]", f"price {price.id!r} is archived")
        prices = change.prices
    return plan_id, seats, tuple(add_on_ids), prices


def _check_change_time(sub: Subscription, t: datetime, as_of: datetime) -> None:
    if sub.ended_at is not None or sub.status is SubscriptionStatus.CANCELED:
        raise FailedPrecondition(f"subscription {sub.id!r} is canceled")
    if sub.cancel_at is not None and t >= sub.cancel_at:
        raise FailedPrecondition(f"subscription {sub.id!r} ends at {sub.cancel_at.isoformat()}")
    if t > as_of:
        raise InvalidArgument.single("proration_date", "must not be in the future")
    if t < sub.start:
        raise InvalidArgument.single("proration_date", "must not be before the subscription starts")
    last_change = max(item.valid_from for item in sub.items)
    if t < last_change:
        raise FailedPrecondition(f"proration time is before the last change, at {last_change.isoformat()}")
    due = sub.boundary(sub.next_boundary)
    if t >= due:
        raise PeriodNotClosed(f"the period ending at {due.isoformat()} has not been closed yet")
    if t >= sub.billing_start and t < sub.boundary(sub.next_boundary - 1):
        raise FailedPrecondition("proration time falls in a period already invoiced")


def _switch_items(
    items: Sequence[Item], config: dict[str, _Slot], t: datetime
) -> tuple[tuple[Item, ...], list[str]]:
    """End at ``t`` the open items whose price or quantity ``config`` changes, start their
    replacements at ``t``; return the items and the keys that changed."""
    kept = [item for item in items if item.valid_to is not None]
    current = {item.key: item for item in items if item.valid_to is None}
    changed: list[str] = []
    for key in [*current, *(k for k in config if k not in current)]:
        old, slot = current.get(key), config.get(key)
        if old is not None and slot is not None and _same(old, slot):
            kept.append(old)
            continue
        changed.append(key)
        if old is not None and old.valid_from < t:
            kept.append(replace(old, valid_to=t))
        if slot is not None:
            kept.append(Item(key, slot.kind, slot.price_id, slot.quantity, t, None, slot.included))
    return tuple(kept), changed


def _same(item: Item, slot: _Slot) -> bool:
    return (item.price_id, item.quantity, item.included) == (slot.price_id, slot.quantity, slot.included)


def _prorate(
    after: Subscription,
    changed: Sequence[str],
    old: dict[str, Item],
    config: dict[str, _Slot],
    coverages: Sequence[Coverage],
    catalog: Catalog,
    t: datetime,
) -> tuple[tuple[InvoiceLine, ...], tuple[Coverage, ...], tuple[Coverage, ...]]:
    """Credits for what the changed licensed items' coverages charged, debits for their new values."""
    whole = after.cycle.period_containing(t)
    credits: list[InvoiceLine] = []
    credited: list[Coverage] = []
    debits: list[InvoiceLine] = []
    for key in sorted(changed, key=lambda k: _key_order(k, old, config)):
        was = old.get(key)
        if was is not None and was.licensed:
            for coverage in coverages:
                if coverage.item_key == key and coverage.covers(t):
                    credits.append(_credit(after, coverage, catalog, t))
                    credited.append(replace(coverage, credited_from=t))
        slot = config.get(key)
        if slot is not None and slot.kind is not ItemKind.USAGE:
            debits.append(_debit(after, key, slot, catalog, t, whole))
    discounted = discount(debits, after.coupons, catalog, t, debit=True)
    added = tuple(
        Coverage(line.coverage_id or "", line.item_key, line.price_id, line.quantity, line.period, line.net)
        for line in discounted
    )
    return (*credits, *discounted), tuple(credited), added


def _key_order(key: str, old: dict[str, Item], config: dict[str, _Slot]) -> tuple[int, str]:
    kind = old[key].kind if key in old else config[key].kind
    return (_KIND_ORDER[kind], key)


def _credit(sub: Subscription, coverage: Coverage, catalog: Catalog, t: datetime) -> InvoiceLine:
    share = factor(t, coverage.period, sub.proration_policy, sub.time_zone)
    exact = -Fraction(coverage.net) * share
    price = catalog.price(coverage.price_id)
    return InvoiceLine(
        kind=InvoiceLineKind.PRORATION_CREDIT,
        description=f"Unused time on {catalog.describe_price(price)}",
        item_key=coverage.item_key,
        price_id=price.id,
        product_id=price.product_id,
        quantity=coverage.quantity,
        unit_amount=None,
        period=Period(t, coverage.period.end),
        amount=round_fraction(exact),
        unrounded_amount=exact,
        proration_factor=share,
        coverage_id=coverage.id,
        at=t,
    )


def _debit(
    sub: Subscription, key: str, slot: _Slot, catalog: Catalog, t: datetime, whole: Period
) -> InvoiceLine:
    price = catalog.price(slot.price_id)
    charge = full_charge(price, slot.quantity, slot.included)
    share = factor(t, whole, sub.proration_policy, sub.time_zone)
    exact = Fraction(charge.amount) * share
    return InvoiceLine(
        kind=InvoiceLineKind.PRORATION_DEBIT,
        description=f"Remaining time on {catalog.describe_price(price)}",
        item_key=key,
        price_id=price.id,
        product_id=price.product_id,
        quantity=slot.quantity,
        unit_amount=charge.unit_amount,
        period=Period(t, whole.end),
        amount=round_fraction(exact),
        unrounded_amount=exact,
        tiers=charge.tiers,
        proration_factor=share,
        included=slot.included,
        coverage_id=f"r{sub.revision}:{key}",
        at=t,
    )


def _redeem(
    codes: Sequence[str],
    existing: tuple[AppliedCoupon, ...],
    catalog: Catalog,
    currency: str,
    time_zone: str,
    at: datetime,
    as_of: datetime,
) -> tuple[AppliedCoupon, ...]:
    applied = list(existing)
    for index, code in enumerate(codes):
        coupon = _found(f"coupon_codes[{index}]", lambda: catalog.coupon_by_code(code))  # noqa: B023
        check_redeemable(coupon, currency, as_of)
        if any(a.coupon_id == coupon.id and not a.used_up for a in applied):
            raise FailedPrecondition(f"coupon_codes[{index}]: coupon {code!r} is already applied")
        applied.append(_applied(coupon, at, time_zone))
    return tuple(applied)


def _applied(coupon: Coupon, at: datetime, time_zone: str) -> AppliedCoupon:
    end = None
    if coupon.duration is CouponDuration.REPEATING:
        end = shift_local(at, time_zone, Interval.MONTH, coupon.duration_in_months or 0)
    return AppliedCoupon(coupon.id, at, end)


def _require_active(active: bool, path: str, message: str) -> None:
    if not active:
        raise FailedPrecondition(f"{path}: {message}")


def _found(path: str, find: Callable[[], _T]) -> _T:
    try:
        return find()
    except NotFound as error:
        raise NotFound(f"{path}: {error.message}") from None
