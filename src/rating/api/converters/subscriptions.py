"""Subscriptions and their changes on the wire (subscription.proto)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from google.protobuf.message import Message

from billing.domain.decimals import format_decimal
from billing.domain.periods import AnchorMode
from billing.domain.proration import ProrationPolicy
from billing.domain.subscriptions import (
    ItemKind,
    NewSubscription,
    PriceItem,
    ProrationBehavior,
    Subscription,
    SubscriptionChange,
    SubscriptionStatus,
    TrialEndBehavior,
)
from billing.v1 import catalog_pb2, rating_pb2
from billing.v1 import subscription_pb2 as pb
from rating.api.converters.catalog import INTERVALS_OUT
from rating.api.converters.common import Checker, convert, optional_timestamp, timestamp_from_datetime
from rating.api.converters.quotes import coupon_codes
from rating.api.converters.resources import format_name, format_optional_name
from rating.usecases.billing_ports import SubscriptionRow

_ONE = Decimal(1)
MAX_TRIAL_DAYS = 730  # Stripe's limit: two years

_ANCHORS = {
    pb.BILLING_CYCLE_ANCHOR_UNSPECIFIED: AnchorMode.ANNIVERSARY,
    pb.BILLING_CYCLE_ANCHOR_ANNIVERSARY: AnchorMode.ANNIVERSARY,
    pb.BILLING_CYCLE_ANCHOR_CALENDAR: AnchorMode.CALENDAR,
}
_ANCHORS_OUT = {
    AnchorMode.ANNIVERSARY: pb.BILLING_CYCLE_ANCHOR_ANNIVERSARY,
    AnchorMode.CALENDAR: pb.BILLING_CYCLE_ANCHOR_CALENDAR,
}
_UNITS = {
    pb.PRORATION_UNIT_UNSPECIFIED: ProrationPolicy.PER_SECOND,
    pb.PRORATION_UNIT_SECOND: ProrationPolicy.PER_SECOND,
    pb.PRORATION_UNIT_DAY: ProrationPolicy.PER_DAY,
}
_UNITS_OUT = {
    ProrationPolicy.PER_SECOND: pb.PRORATION_UNIT_SECOND,
    ProrationPolicy.PER_DAY: pb.PRORATION_UNIT_DAY,
}
_TRIAL_ENDS = {
    pb.TRIAL_END_BEHAVIOR_UNSPECIFIED: TrialEndBehavior.CREATE_INVOICE,
    pb.TRIAL_END_BEHAVIOR_CREATE_INVOICE: TrialEndBehavior.CREATE_INVOICE,
    pb.TRIAL_END_BEHAVIOR_CANCEL: TrialEndBehavior.CANCEL,
}
_TRIAL_ENDS_OUT = {
    TrialEndBehavior.CREATE_INVOICE: pb.TRIAL_END_BEHAVIOR_CREATE_INVOICE,
    TrialEndBehavior.CANCEL: pb.TRIAL_END_BEHAVIOR_CANCEL,
}
BEHAVIORS = {
    pb.PRORATION_BEHAVIOR_UNSPECIFIED: ProrationBehavior.CREATE_PRORATIONS,
    pb.PRORATION_BEHAVIOR_CREATE_PRORATIONS: ProrationBehavior.CREATE_PRORATIONS,
    pb.PRORATION_BEHAVIOR_ALWAYS_INVOICE: ProrationBehavior.ALWAYS_INVOICE,
    pb.PRORATION_BEHAVIOR_NONE: ProrationBehavior.NONE,
}
STATUSES = {
    pb.SUBSCRIPTION_STATUS_TRIALING: SubscriptionStatus.TRIALING,
    pb.SUBSCRIPTION_STATUS_ACTIVE: SubscriptionStatus.ACTIVE,
    pb.SUBSCRIPTION_STATUS_CANCELED: SubscriptionStatus.CANCELED,
}
_STATUSES_OUT = {member: number for number, member in STATUSES.items()}
_ITEM_KINDS_OUT = {
    ItemKind.SEAT: rating_pb2.LINE_KIND_SEAT,
    ItemKind.ADD_ON: rating_pb2.LINE_KIND_ADD_ON,
    ItemKind.USAGE: rating_pb2.LINE_KIND_USAGE,
    ItemKind.PRICE: rating_pb2.LINE_KIND_ITEM,
}


# --- inbound ------------------------------------------------------------------------------


def new_subscription_from_proto(msg: pb.CreateSubscriptionRequest) -> tuple[NewSubscription, int]:
    """The subscription to create (id, currency and time zone filled by the use case) and its
    trial length in days (0: none, or ``trial_end`` set)."""
    return convert("", lambda c: _new(msg, c))


def _new(msg: pb.CreateSubscriptionRequest, c: Checker) -> tuple[NewSubscription, int] | None:
    sub, at = msg.subscription, c.at("subscription")
    customer_id = at.name(sub.customer, "customers", "customer")
    plan_id = at.optional_name(sub.plan, "plans", "plan")
    prices = _prices(sub.prices, at)
    if plan_id is None and not sub.prices:
        at.add("plan", "a plan or at least one price is required")
    if sub.seats and plan_id is None:
        at.add("seats", "seats need a plan")
    seats = at.decimal(sub.seats, "seats", default=_ONE)
    add_ons = at.names(sub.add_ons, "addons", "add_ons")
    trial_end = at.instant(sub, "trial_end_time")
    start = at.instant(sub, "start_time")
    if msg.trial_days < 0 or msg.trial_days > MAX_TRIAL_DAYS:
        c.add("trial_days", f"must be between 0 and {MAX_TRIAL_DAYS}")
    if msg.trial_days and trial_end is not None:
        c.add("trial_days", "give trial_days or subscription.trial_end_time, not both")
    if trial_end is not None and start is not None and trial_end <= start:
        at.add("trial_end_time", "must be after start_time")
    anchor = at.enum(sub.billing_cycle_anchor, _ANCHORS, "billing_cycle_anchor")
    unit = at.enum(sub.proration_unit, _UNITS, "proration_unit")
    trial_behavior = at.enum(sub.trial_end_behavior, _TRIAL_ENDS, "trial_end_behavior")
    for name in ("items", "discounts", "currency", "status", "name"):
        if _is_set(sub, name):
            at.add(name, "is output only")
    codes = coupon_codes(msg.coupon_codes, c)
    if anchor is None or unit is None or trial_behavior is None:
        return None
    new = NewSubscription(
        id="",
        customer_id=customer_id,
        currency="",
        time_zone="",
        plan_id=plan_id,
        seats=seats,
        add_on_ids=add_ons,
        prices=prices,
        coupon_codes=codes,
        start=start,
        trial_end=trial_end,
        trial_end_behavior=trial_behavior,
        anchor_mode=anchor,
        proration_policy=unit,
    )
    return new, msg.trial_days


def _is_set(msg: pb.Subscription, name: str) -> bool:
    value = getattr(msg, name)
    return bool(value) if not hasattr(value, "ListFields") else bool(value.ListFields())


def _prices(items: Sequence[pb.SubscriptionItem], c: Checker) -> tuple[PriceItem, ...]:
    prices: list[PriceItem] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        at = c.at(f"prices[{index}]")
        price_id = at.name(item.price, "prices", "price")
        if price_id and price_id in seen:
            at.add("price", f"duplicate {item.price[:80]!r}")
        seen.add(price_id)
        prices.append(PriceItem(price_id, at.decimal(item.quantity, "quantity", default=_ONE)))
    return tuple(prices)


def change_from_proto(
    msg: pb.SubscriptionChange,
    behavior: pb.ProrationBehavior.ValueType,
    proration_time: datetime | None,
    field: str = "change",
) -> SubscriptionChange:
    return convert("", lambda c: _change(msg, c.at(field), c, behavior, proration_time))


def _change(
    msg: pb.SubscriptionChange,
    c: Checker,
    root: Checker,
    behavior: pb.ProrationBehavior.ValueType,
    proration_time: datetime | None,
) -> SubscriptionChange | None:
    if not msg.ListFields():
        c.add("", "at least one field must be set")
    plan_id = c.optional_name(msg.plan, "plans", "plan")
    seats = c.optional_decimal(msg.seats, "seats")
    added = c.names(msg.add_add_ons, "addons", "add_add_ons")
    removed = c.names(msg.remove_add_ons, "addons", "remove_add_ons")
    for index, addon_id in enumerate(removed):
        if addon_id and addon_id in added:
            c.add(f"remove_add_ons[{index}]", "is also added by this change")
    codes = coupon_codes(msg.coupon_codes, c)
    chosen = root.enum(behavior, BEHAVIORS, "proration_behavior")
    if chosen is None:
        return None
    return SubscriptionChange(
        plan_id=plan_id,
        seats=seats,
        add_ons_added=added,
        add_ons_removed=removed,
        coupon_codes=codes,
        proration_behavior=chosen,
        proration_date=proration_time,
    )


def optional_instant(msg: Message, name: str) -> datetime | None:
    return convert("", lambda c: (c.instant(msg, name),))[0]


def behavior_from_proto(value: pb.ProrationBehavior.ValueType) -> ProrationBehavior:
    return convert("", lambda c: c.enum(value, BEHAVIORS, "proration_behavior"))


def optional_status(value: pb.SubscriptionStatus.ValueType) -> SubscriptionStatus | None:
    if value == 0:
        return None
    return convert("", lambda c: c.enum(value, STATUSES, "status"))


# --- outbound -----------------------------------------------------------------------------


def change_to_proto(change: SubscriptionChange) -> pb.SubscriptionChange:
    return pb.SubscriptionChange(
        plan=format_optional_name("plans", change.plan_id),
        seats="" if change.seats is None else format_decimal(change.seats),
        add_add_ons=[format_name("addons", a) for a in change.add_ons_added],
        remove_add_ons=[format_name("addons", a) for a in change.add_ons_removed],
        coupon_codes=list(change.coupon_codes),
    )


def subscription_to_proto(row: SubscriptionRow) -> pb.Subscription:
    return state_to_proto(row.state, row)


def state_to_proto(sub: Subscription, row: SubscriptionRow | None = None) -> pb.Subscription:
    """The subscription as the API shows it; ``row`` adds what only storage knows (parking)."""
    current = sub.current_period if sub.ended_at is None else None
    out = pb.Subscription(
        name=format_name("subscriptions", sub.id),
        customer=format_name("customers", sub.customer_id),
        plan=format_optional_name("plans", sub.plan_id),
        seats=format_decimal(sub.seats) if sub.plan_id else "",
        add_ons=[format_name("addons", a) for a in sub.add_on_ids],
        items=[
            pb.SubscriptionItem(
                price=format_name("prices", item.price_id),
                quantity="" if item.kind is ItemKind.USAGE else format_decimal(item.quantity),
                kind=_ITEM_KINDS_OUT[item.kind],
                add_on=format_name("addons", item.key.split(":", 1)[1])
                if item.kind is ItemKind.ADD_ON
                else "",
                included=item.included,
            )
            for item in sub.items
            if item.valid_to is None
        ],
        discounts=[
            pb.SubscriptionDiscount(
                coupon=format_name("coupons", c.coupon_id), redeem_time=timestamp_from_datetime(c.redeemed_at)
            )
            for c in sub.coupons
            if not c.used_up
        ],
        currency=sub.currency,
        recurring=rating_recurring(sub),
        status=_STATUSES_OUT[sub.status],
        billing_cycle_anchor=_ANCHORS_OUT[sub.cycle.mode],
        proration_unit=_UNITS_OUT[sub.proration_policy],
        start_time=timestamp_from_datetime(sub.start),
        trial_end_time=optional_timestamp(sub.trial_end),
        billing_anchor_time=timestamp_from_datetime(sub.cycle.anchor),
        current_period_start_time=None if current is None else timestamp_from_datetime(current.start),
        current_period_end_time=None if current is None else timestamp_from_datetime(current.end),
        cancel_at_period_end=sub.cancel_at_period_end,
        end_time=optional_timestamp(sub.cancel_at),
        trial_end_behavior=_TRIAL_ENDS_OUT[sub.trial_end_behavior],
        create_time=timestamp_from_datetime(sub.created_at),
    )
    if sub.scheduled_change is not None:
        out.scheduled_change.change.CopyFrom(change_to_proto(sub.scheduled_change))
        out.scheduled_change.apply_time.CopyFrom(timestamp_from_datetime(sub.boundary(sub.next_boundary)))
    if row is not None:
        out.parked_reason = row.parked_reason or ""
        if row.parked_at is not None:
            out.park_time.CopyFrom(timestamp_from_datetime(row.parked_at))
        if row.updated_at is not None:
            out.update_time.CopyFrom(timestamp_from_datetime(row.updated_at))
    return out


def rating_recurring(sub: Subscription) -> catalog_pb2.Recurring:
    return catalog_pb2.Recurring(
        interval=INTERVALS_OUT[sub.cycle.interval], interval_count=sub.cycle.interval_count
    )
