"""Pricing a cart from one catalog snapshot: the live quote of checkout pages.

Units: quantities are Decimal; every line is computed exactly by its price model and rounded
once, half-up, to a minor unit; totals are sums of rounded lines (DESIGN.md §2). The quote is a
pure function of (request, catalog snapshot, as_of), so one quote can never mix two versions.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from billing.domain.catalog import Aggregation, Catalog, Coupon, Plan, Price
from billing.domain.discounts import Discountable, check_redeemable, discount_lines
from billing.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from billing.domain.money import exact_sum, round_minor
from billing.domain.pricing import Charge, Usage

_ONE = Decimal(1)
_ZERO = Decimal(0)
_T = TypeVar("_T")


class LineKind(enum.Enum):
    SEAT = "seat"
    USAGE = "usage"
    ADD_ON = "add_on"
    ITEM = "item"


@dataclass(frozen=True, slots=True)
class PriceSelector:
    """Exactly one of a price id, a lookup key, or an inline (unpublished) price."""

    price_id: str | None = None
    lookup_key: str | None = None
    inline: Price | None = None


@dataclass(frozen=True, slots=True)
class PlanSelector:
    plan_id: str | None = None
    lookup_key: str | None = None


@dataclass(frozen=True, slots=True)
class QuoteItem:
    price: PriceSelector
    quantity: Decimal = _ONE


@dataclass(frozen=True, slots=True)
class UsageEstimate:
    """Expected usage of a meter (by event name or id) for events with these properties."""

    meter: str
    quantity: Decimal
    properties: tuple[tuple[str, str], ...] = ()
    transaction_count: int = 0


@dataclass(frozen=True, slots=True)
class QuoteRequest:
    currency: str
    plan: PlanSelector | None = None
    seats: Decimal = _ONE
    items: tuple[QuoteItem, ...] = ()
    add_on_ids: tuple[str, ...] = ()
    usage: tuple[UsageEstimate, ...] = ()
    coupon_codes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LineDiscount:
    coupon_id: str
    amount: int


@dataclass(frozen=True, slots=True)
class QuoteLine:
    kind: LineKind
    description: str
    price: Price
    charge: Charge
    amount: int
    discounts: tuple[LineDiscount, ...] = ()
    included: bool = False
    inline: bool = False

    @property
    def discount(self) -> int:
        return sum(d.amount for d in self.discounts)

    @property
    def total(self) -> int:
        return self.amount - self.discount


@dataclass(frozen=True, slots=True)
class Quote:
    currency: str
    lines: tuple[QuoteLine, ...]
    catalog_version: int
    quote_time: datetime
    coupons: tuple[Coupon, ...] = field(default=())

    @property
    def subtotal(self) -> int:
        return sum(line.amount for line in self.lines)

    @property
    def discount_total(self) -> int:
        return sum(line.discount for line in self.lines)

    @property
    def total(self) -> int:
        return self.subtotal - self.discount_total


@dataclass(frozen=True, slots=True)
class _Slot:
    """A line of a cart before its quantity is known: what a plan contributes is derived once
    per catalog snapshot, not per quote."""

    kind: LineKind
    price: Price
    description: str
    path: str
    included: bool = False
    inline: bool = False
    # A usage price's filters, as pairs an estimate's properties must include.
    filters: frozenset[tuple[str, str]] = frozenset()


@dataclass(slots=True)
class _Entry:
    slot: _Slot
    quantity: Decimal
    estimates: list[UsageEstimate] = field(default_factory=list)
    aggregation: Aggregation = Aggregation.SUM


def price_quote(request: QuoteRequest, catalog: Catalog, as_of: datetime) -> Quote:
    """Price ``request`` against ``catalog`` at ``as_of``."""
    entries = _cart(request, catalog)
    _assign_usage(request.usage, entries, catalog)
    coupons = tuple(
        _coupon(catalog, code, f"coupon_codes[{i}]", request.currency, as_of)
        for i, code in enumerate(request.coupon_codes)
    )
    charges = [_charge(entry) for entry in entries]
    amounts = [round_minor(charge.amount) for charge in charges]
    discounts: list[list[LineDiscount]] = [[] for _ in entries]
    remaining = list(amounts)
    for coupon in coupons:
        owed = [
            Discountable(e.slot.price.product_id, left) for e, left in zip(entries, remaining, strict=True)
        ]
        for index, cut in enumerate(discount_lines(coupon, owed)):
            if cut:
                discounts[index].append(LineDiscount(coupon.id, cut))
                remaining[index] -= cut
    lines = tuple(
        QuoteLine(s.kind, s.description, s.price, charge, amount, tuple(cuts), s.included, s.inline)
        for s, charge, amount, cuts in zip(
            (e.slot for e in entries), charges, amounts, discounts, strict=True
        )
    )
    return Quote(request.currency, lines, catalog.version, as_of, coupons)


def _cart(request: QuoteRequest, catalog: Catalog) -> list[_Entry]:
    entries: list[_Entry] = []
    if request.plan is not None:
        plan = _select_plan(request.plan, catalog)
        for slot in catalog.derived(("quote plan slots", plan.id), lambda c: _plan_slots(plan, c)):
            quantity = request.seats if slot.kind is LineKind.SEAT else _ONE if slot.included else _ZERO
            entries.append(_Entry(slot, quantity))
    for index, item in enumerate(request.items):
        path = f"items[{index}].price"
        price, inline = _select_price(item.price, catalog, path)
        kind = LineKind.USAGE if price.is_usage else LineKind.ITEM
        entries.append(
            _Entry(_slot(kind, price, catalog.describe_price(price), path, inline=inline), item.quantity)
        )
    for index, addon_id in enumerate(request.add_on_ids):
        path = f"add_ons[{index}]"
        addon = _located(path, lambda: catalog.addon(addon_id))  # noqa: B023
        _require_active(addon.active, path, f"add-on {addon.id!r} is archived")
        entries.append(_Entry(_slot(LineKind.ADD_ON, catalog.price(addon.price_id), addon.name, path), _ONE))
    for entry in entries:
        price = entry.slot.price
        if price.currency != request.currency:
            raise InvalidArgument.single(
                entry.slot.path,
                f"price {price.id!r} is in {price.currency}, the quote is in {request.currency}",
            )
    return entries


def _plan_slots(plan: Plan, catalog: Catalog) -> tuple[_Slot, ...]:
    slots: list[_Slot] = []
    if plan.seat_price_id:
        slots.append(_slot(LineKind.SEAT, catalog.price(plan.seat_price_id), f"{plan.name} seats", "plan"))
    for price_id in plan.usage_price_ids:
        price = catalog.price(price_id)
        slots.append(_slot(LineKind.USAGE, price, catalog.describe_price(price), "plan"))
    for addon_id in plan.included_addon_ids:
        addon = catalog.addon(addon_id)
        description = f"{addon.name} (included)"
        slots.append(
            _slot(LineKind.ADD_ON, catalog.price(addon.price_id), description, "plan", included=True)
        )
    return tuple(slots)


def _slot(
    kind: LineKind, price: Price, description: str, path: str, *, included: bool = False, inline: bool = False
) -> _Slot:
    filters = frozenset(price.usage.filters) if price.usage is not None else frozenset()
    return _Slot(kind, price, description, path, included, inline, filters)


def _select_plan(selector: PlanSelector, catalog: Catalog) -> Plan:
    if selector.plan_id:
        plan = _located("plan", lambda: catalog.plan(selector.plan_id or ""))
    else:
        plan = _located("plan", lambda: catalog.plan_by_lookup_key(selector.lookup_key or ""))
    _require_active(plan.active, "plan", f"plan {plan.id!r} is archived")
    return plan


def _select_price(selector: PriceSelector, catalog: Catalog, path: str) -> tuple[Price, bool]:
    if selector.inline is not None:
        return selector.inline, True
    if selector.price_id:
        price = _located(path, lambda: catalog.price(selector.price_id or ""))
    else:
        price = _located(path, lambda: catalog.price_by_lookup_key(selector.lookup_key or ""))
    _require_active(price.active, path, f"price {price.id!r} is archived")
    return price, False


def _assign_usage(estimates: Sequence[UsageEstimate], entries: list[_Entry], catalog: Catalog) -> None:
    """Give each usage price the estimates whose meter matches and whose properties pass its filters.

    An estimate is an aggregate of events with the estimate's properties, so it counts towards
    every usage price whose filters it satisfies, just as the events themselves would.
    """
    by_meter: dict[str, list[_Entry]] = {}
    for entry in entries:
        usage = entry.slot.price.usage
        if usage is not None:
            by_meter.setdefault(usage.meter_id, []).append(entry)
    for index, estimate in enumerate(estimates):
        meter = catalog.meters.get(estimate.meter) or catalog.meter_for_event(estimate.meter)
        if meter is None:
            raise NotFound(f"usage[{index}].meter: no meter {estimate.meter[:60]!r}")
        properties = dict(estimate.properties)
        for key in properties:
            if key not in meter.dimensions:
                raise InvalidArgument.single(
                    f"usage[{index}].properties", f"meter {meter.event_name!r} has no dimension {key!r}"
                )
        pairs = properties.items()
        matched = False
        for entry in by_meter.get(meter.id, ()):
            if entry.slot.filters <= pairs:
                entry.estimates.append(estimate)
                entry.aggregation = meter.aggregation
                matched = True
        if not matched:
            raise InvalidArgument.single(f"usage[{index}]", "matches no usage price in the cart")
    for entry in entries:
        if entry.estimates:
            entry.quantity = _combine(entry.estimates, entry.aggregation)


def _combine(estimates: Sequence[UsageEstimate], aggregation: Aggregation) -> Decimal:
    # NOTE: a max or latest meter reports one level, not a total; two estimates of it overlap.
    if aggregation in (Aggregation.MAX, Aggregation.LATEST):
        return max(e.quantity for e in estimates)
    return exact_sum(e.quantity for e in estimates)


def _charge(entry: _Entry) -> Charge:
    if entry.slot.included:
        return Charge(quantity=entry.quantity, amount=_ZERO, unit_amount=_ZERO)
    count = sum(e.transaction_count for e in entry.estimates)
    return entry.slot.price.model.charge(Usage(entry.quantity, transaction_count=count))


def _coupon(catalog: Catalog, code: str, path: str, currency: str, as_of: datetime) -> Coupon:
    coupon = _located(path, lambda: catalog.coupon_by_code(code))
    check_redeemable(coupon, currency, as_of)
    return coupon


def _require_active(active: bool, path: str, message: str) -> None:
    if not active:
        raise FailedPrecondition(f"{path}: {message}")


def _located(path: str, find: Callable[[], _T]) -> _T:
    try:
        return find()
    except NotFound as error:
        raise NotFound(f"{path}: {error.message}") from None
