"""How each catalog and customer dataclass maps to its table.

One ``Table`` per entity keeps the row mapping in one place; the repositories are written once
against this description instead of once per entity.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any, Generic, TypeVar

from billing.domain.catalog import (
    AddOn,
    Aggregation,
    Coupon,
    CouponDuration,
    Interval,
    Meter,
    Plan,
    Price,
    Product,
    Recurring,
    UsageBinding,
)
from billing.domain.customer import Address, Customer, TaxId
from billing.store.price_models import model_from_json, model_to_json

T = TypeVar("T")


@dataclass(frozen=True)
class Table(Generic[T]):
    """Columns in insert order (``id`` first, ``created_at`` filled by the database)."""

    name: str
    entity: type[T]
    columns: tuple[str, ...]
    to_row: Callable[[T], Sequence[Any]]
    from_row: Callable[[Mapping[str, Any]], T]
    # Names of unique constraints, mapped to the message an ALREADY_EXISTS error carries.
    unique: Mapping[str, str]
    noun: str


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _meta(row: Mapping[str, Any]) -> dict[str, str]:
    return dict(json.loads(row["metadata"]))


PRODUCTS: Table[Product] = Table(
    name="products",
    entity=Product,
    columns=("id", "display_name", "description", "tax_code", "archived", "metadata"),
    to_row=lambda p: (p.id, p.name, p.description, p.tax_code, not p.active, _json(dict(p.metadata))),
    from_row=lambda r: Product(
        id=r["id"],
        name=r["display_name"],
        description=r["description"],
        tax_code=r["tax_code"],
        active=not r["archived"],
        metadata=_meta(r),
        created_at=r["created_at"],
    ),
    unique={},
    noun="product",
)

METERS: Table[Meter] = Table(
    name="meters",
    entity=Meter,
    columns=("id", "event_name", "display_name", "aggregation", "value_property", "dimensions", "archived"),
    to_row=lambda m: (
        m.id,
        m.event_name,
        m.display_name,
        m.aggregation.value,
        m.value_property,
        list(m.dimensions),
        not m.active,
    ),
    from_row=lambda r: Meter(
        id=r["id"],
        event_name=r["event_name"],
        display_name=r["display_name"],
        aggregation=Aggregation(r["aggregation"]),
        value_property=r["value_property"],
        dimensions=tuple(r["dimensions"]),
        active=not r["archived"],
        created_at=r["created_at"],
    ),
    unique={"meters_event_name_key": "a meter for this event name already exists"},
    noun="meter",
)


def _price_row(p: Price) -> Sequence[Any]:
    recurring = p.recurring
    usage = p.usage
    return (
        p.id,
        p.product_id,
        p.currency,
        _json(model_to_json(p.model)),
        recurring.interval.value if recurring else None,
        recurring.interval_count if recurring else None,
        usage.meter_id if usage else None,
        _json([list(f) for f in usage.filters] if usage else []),
        p.lookup_key,
        p.nickname,
        p.version,
        p.supersedes,
        not p.active,
        _json(dict(p.metadata)),
    )


def _price(r: Mapping[str, Any]) -> Price:
    interval = r["recurring_interval"]
    return Price(
        id=r["id"],
        product_id=r["product_id"],
        currency=r["currency"],
        model=model_from_json(json.loads(r["model"])),
        recurring=Recurring(Interval(interval), r["recurring_count"]) if interval else None,
        usage=(
            UsageBinding(r["meter_id"], tuple((k, v) for k, v in json.loads(r["filters"])))
            if r["meter_id"]
            else None
        ),
        lookup_key=r["lookup_key"],
        nickname=r["nickname"],
        version=r["version"],
        supersedes=r["supersedes"],
        active=not r["archived"],
        metadata=_meta(r),
        created_at=r["created_at"],
    )


PRICES: Table[Price] = Table(
    name="prices",
    entity=Price,
    columns=(
        "id",
        "product_id",
        "currency",
        "model",
        "recurring_interval",
        "recurring_count",
        "meter_id",
        "filters",
        "lookup_key",
        "nickname",
        "version",
        "supersedes",
        "archived",
        "metadata",
    ),
    to_row=_price_row,
    from_row=_price,
    unique={
        "prices_lookup_key_key": "another price holds this lookup key; set transfer_lookup_key to move it",
        "prices_supersedes_key": "that price has already been superseded by a newer version",
    },
    noun="price",
)

PLANS: Table[Plan] = Table(
    name="plans",
    entity=Plan,
    columns=(
        "id",
        "display_name",
        "description",
        "seat_price_id",
        "usage_price_ids",
        "included_addon_ids",
        "lookup_key",
        "currency",
        "archived",
        "metadata",
    ),
    to_row=lambda p: (
        p.id,
        p.name,
        p.description,
        p.seat_price_id,
        list(p.usage_price_ids),
        list(p.included_addon_ids),
        p.lookup_key,
        p.currency,
        not p.active,
        _json(dict(p.metadata)),
    ),
    from_row=lambda r: Plan(
        id=r["id"],
        name=r["display_name"],
        description=r["description"],
        seat_price_id=r["seat_price_id"],
        usage_price_ids=tuple(r["usage_price_ids"]),
        included_addon_ids=tuple(r["included_addon_ids"]),
        lookup_key=r["lookup_key"],
        currency=r["currency"],
        active=not r["archived"],
        metadata=_meta(r),
        created_at=r["created_at"],
    ),
    unique={"plans_lookup_key_key": "another plan holds this lookup key"},
    noun="plan",
)

ADDONS: Table[AddOn] = Table(
    name="addons",
    entity=AddOn,
    columns=("id", "display_name", "price_id", "archived", "metadata"),
    to_row=lambda a: (a.id, a.name, a.price_id, not a.active, _json(dict(a.metadata))),
    from_row=lambda r: AddOn(
        id=r["id"],
        name=r["display_name"],
        price_id=r["price_id"],
        active=not r["archived"],
        metadata=_meta(r),
        created_at=r["created_at"],
    ),
    unique={},
    noun="add-on",
)

COUPONS: Table[Coupon] = Table(
    name="coupons",
    entity=Coupon,
    columns=(
        "id",
        "code",
        "display_name",
        "percent_off",
        "amount_off",
        "currency",
        "duration",
        "duration_in_months",
        "applies_to_products",
        "max_redemptions",
        "redeem_by",
        "times_redeemed",
        "archived",
        "metadata",
    ),
    to_row=lambda c: (
        c.id,
        c.code,
        c.name,
        c.percent_off,
        c.amount_off,
        c.currency,
        c.duration.value,
        c.duration_in_months,
        list(c.applies_to_products),
        c.max_redemptions,
        c.redeem_by,
        c.times_redeemed,
        not c.active,
        _json(dict(c.metadata)),
    ),
    from_row=lambda r: Coupon(
        id=r["id"],
        code=r["code"],
        name=r["display_name"],
        duration=CouponDuration(r["duration"]),
        percent_off=Decimal(r["percent_off"]) if r["percent_off"] is not None else None,
        amount_off=r["amount_off"],
        currency=r["currency"],
        duration_in_months=r["duration_in_months"],
        applies_to_products=tuple(r["applies_to_products"]),
        max_redemptions=r["max_redemptions"],
        redeem_by=r["redeem_by"],
        times_redeemed=r["times_redeemed"],
        active=not r["archived"],
        metadata=_meta(r),
        created_at=r["created_at"],
    ),
    unique={"coupons_code_key": "a coupon with this code already exists"},
    noun="coupon",
)


def _address(data: Mapping[str, str]) -> Address:
    return Address(**data)


CUSTOMERS: Table[Customer] = Table(
    name="customers",
    entity=Customer,
    columns=(
        "id",
        "display_name",
        "email",
        "currency",
        "time_zone",
        "billing_address",
        "tax_ids",
        "crm_account_id",
        "accounting_id",
        "metadata",
        "test_clock_id",
        "has_payment_method",
    ),
    to_row=lambda c: (
        c.id,
        c.name,
        c.email,
        c.currency,
        c.time_zone,
        _json({k: v for k, v in asdict(c.billing_address).items() if v}),
        _json([[t.type, t.value] for t in c.tax_ids]),
        c.crm_account_id,
        c.accounting_id,
        _json(dict(c.metadata)),
        c.test_clock_id,
        c.has_payment_method,
    ),
    from_row=lambda r: Customer(
        id=r["id"],
        name=r["display_name"],
        email=r["email"],
        currency=r["currency"],
        time_zone=r["time_zone"],
        billing_address=_address(json.loads(r["billing_address"])),
        tax_ids=tuple(TaxId(t, v) for t, v in json.loads(r["tax_ids"])),
        crm_account_id=r["crm_account_id"],
        accounting_id=r["accounting_id"],
        metadata=_meta(r),
        test_clock_id=r["test_clock_id"],
        has_payment_method=r["has_payment_method"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
    ),
    unique={
        "customers_crm_account_id_key": "another customer has this crm_account_id",
        "customers_accounting_id_key": "another customer has this accounting_id",
    },
    noun="customer",
)


TABLES: dict[type[Any], Table[Any]] = {
    t.entity: t for t in (PRODUCTS, METERS, PRICES, PLANS, ADDONS, COUPONS, CUSTOMERS)
}
