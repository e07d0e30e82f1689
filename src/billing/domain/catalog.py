"""Catalog entities and the immutable snapshot quotes are priced from.

Prices are immutable once created: a new amount is a new ``Price`` whose ``supersedes`` names the
old one and whose ``version`` is one higher. Grandfathered subscriptions keep the version they
were sold; a ``lookup_key`` can move to the newest version.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar, cast

from billing.domain.errors import NotFound
from billing.domain.pricing import PriceModel


class Interval(enum.Enum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


class Aggregation(enum.Enum):
    SUM = "sum"
    COUNT = "count"
    MAX = "max"
    UNIQUE_COUNT = "unique_count"
    LATEST = "latest"

    @property
    def needs_value_property(self) -> bool:
        return self is not Aggregation.COUNT


class CouponDuration(enum.Enum):
    ONCE = "once"
    REPEATING = "repeating"
    FOREVER = "forever"


@dataclass(frozen=True, slots=True)
class Recurring:
    interval: Interval
    interval_count: int = 1


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    name: str
    description: str = ""
    tax_code: str = ""
    active: bool = True
    metadata: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Meter:
    """Turns usage events named ``event_name`` into a quantity.

    ``dimensions`` are the event properties prices may filter on (``channel``, ``outcome``);
    a filter on any other property is rejected, so a typo cannot silently bill zero.
    """

    id: str
    event_name: str
    display_name: str
    aggregation: Aggregation
    value_property: str = ""
    dimensions: tuple[str, ...] = ()
    active: bool = True
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class UsageBinding:
    """A usage price counts the events of ``meter_id`` whose properties match every filter."""

    meter_id: str
    filters: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Price:
    id: str
    product_id: str
    currency: str
    model: PriceModel
    recurring: Recurring | None = None
    usage: UsageBinding | None = None
    lookup_key: str | None = None
    nickname: str = ""
    version: int = 1
    supersedes: str | None = None
    active: bool = True
    metadata: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None

    @property
    def is_usage(self) -> bool:
        return self.usage is not None


@dataclass(frozen=True, slots=True)
class Plan:
    """A bundle sold as one tier: a seat price, usage prices and add-ons included for free."""

    id: str
    name: str
    seat_price_id: str | None
    usage_price_ids: tuple[str, ...] = ()
    included_addon_ids: tuple[str, ...] = ()
    lookup_key: str | None = None
    description: str = ""
    # Derived from the plan's prices, which share one currency.
    currency: str = ""
    active: bool = True
    metadata: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AddOn:
    id: str
    name: str
    price_id: str
    active: bool = True
    metadata: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Coupon:
    """A discount. Exactly one of ``percent_off`` and ``amount_off`` (minor units) is set.

    ``applies_to_products`` empty means the whole invoice; otherwise only lines of those
    products are discounted (line-item level).
    """

    id: str
    code: str
    name: str
    duration: CouponDuration
    percent_off: Decimal | None = None
    amount_off: int | None = None
    currency: str | None = None
    duration_in_months: int | None = None
    applies_to_products: tuple[str, ...] = ()
    max_redemptions: int | None = None
    redeem_by: datetime | None = None
    times_redeemed: int = 0
    active: bool = True
    metadata: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None


@dataclass(frozen=True)
class Catalog:
    """One consistent version of the whole catalog, held in memory by the rating service.

    It is never mutated: a catalog change builds a new snapshot, and a quote holds one snapshot
    from start to end, so it can never mix two versions.
    """

    version: int
    products: Mapping[str, Product] = field(default_factory=dict)
    meters: Mapping[str, Meter] = field(default_factory=dict)
    prices: Mapping[str, Price] = field(default_factory=dict)
    plans: Mapping[str, Plan] = field(default_factory=dict)
    addons: Mapping[str, AddOn] = field(default_factory=dict)
    coupons: Mapping[str, Coupon] = field(default_factory=dict)
    _price_keys: Mapping[str, Price] = field(init=False, repr=False)
    _plan_keys: Mapping[str, Plan] = field(init=False, repr=False)
    _coupon_codes: Mapping[str, Coupon] = field(init=False, repr=False)
    _meter_events: Mapping[str, Meter] = field(init=False, repr=False)
    _derived: dict[Hashable, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Derived indexes, built once per snapshot rather than searched per quote.
        object.__setattr__(
            self, "_price_keys", {p.lookup_key: p for p in self.prices.values() if p.lookup_key}
        )
        object.__setattr__(self, "_plan_keys", {p.lookup_key: p for p in self.plans.values() if p.lookup_key})
        object.__setattr__(self, "_coupon_codes", {c.code: c for c in self.coupons.values()})
        object.__setattr__(self, "_meter_events", {m.event_name: m for m in self.meters.values()})
        object.__setattr__(self, "_derived", {})

    def derived(self, key: Hashable, build: Callable[[Catalog], _T]) -> _T:
        """``build(self)``, computed once per snapshot and ``key``.

        What is derived from an immutable snapshot never goes stale, and it goes away with the
        snapshot, so nothing computed from one catalog version can serve another. Keys must
        name catalog entities (bounded by the catalog), never request values.
        """
        try:
            return cast(_T, self._derived[key])
        except KeyError:
            value = self._derived[key] = build(self)
            return value

    def price(self, price_id: str) -> Price:
        return _get(self.prices, price_id, "price")

    def price_by_lookup_key(self, key: str) -> Price:
        return _get(self._price_keys, key, "price with lookup key")

    def plan(self, plan_id: str) -> Plan:
        return _get(self.plans, plan_id, "plan")

    def plan_by_lookup_key(self, key: str) -> Plan:
        return _get(self._plan_keys, key, "plan with lookup key")

    def addon(self, addon_id: str) -> AddOn:
        return _get(self.addons, addon_id, "add-on")

    def meter(self, meter_id: str) -> Meter:
        return _get(self.meters, meter_id, "meter")

    def meter_for_event(self, event_name: str) -> Meter | None:
        return self._meter_events.get(event_name)

    def product(self, product_id: str) -> Product:
        return _get(self.products, product_id, "product")

    def coupon_by_code(self, code: str) -> Coupon:
        return _get(self._coupon_codes, code, "coupon with code")

    def describe_price(self, price: Price) -> str:
        """How a line of ``price`` is named on quotes and invoices: product name (nickname)."""
        product = self.products.get(price.product_id)
        name = product.name if product else price.product_id
        return f"{name} ({price.nickname})" if price.nickname else name


_T = TypeVar("_T")


def _get(items: Mapping[str, _T], key: str, what: str) -> _T:
    try:
        return items[key]
    except KeyError:
        raise NotFound(f"{what} {key!r} not found") from None
