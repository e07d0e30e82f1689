"""Catalog use cases: create, change and archive products, meters, prices, plans, add-ons, coupons.

Each function runs inside the caller's unit of work and does not commit: the idempotency wrapper
commits the mutation together with its stored answer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from billing.domain.catalog import AddOn, Coupon, Meter, Plan, Price, Product
from billing.domain.errors import FailedPrecondition, InvalidArgument, NotFound, Violations
from rating.usecases.ports import UnitOfWork

T = TypeVar("T")

ID_PREFIXES: Mapping[type[Any], str] = {
    Product: "prod",
    Meter: "mtr",
    Price: "price",
    Plan: "plan",
    AddOn: "addon",
    Coupon: "coupon",
}


async def create_product(uow: UnitOfWork, product: Product) -> Product:
    return await uow.entities.add(_with_new_id(uow, product))


async def create_meter(uow: UnitOfWork, meter: Meter) -> Meter:
    return await uow.entities.add(_with_new_id(uow, meter))


async def create_price(uow: UnitOfWork, price: Price, *, transfer_lookup_key: bool = False) -> Price:
    """Add a price, or a new version of one when ``price.supersedes`` is set."""
    await _referenced(uow, Product, price.product_id, "price.product")
    await _check_usage_binding(uow, price)
    if price.supersedes:
        previous = await _referenced(uow, Price, price.supersedes, "price.supersedes", lock=True)
        if (previous.product_id, previous.currency) != (price.product_id, price.currency):
            raise InvalidArgument.single(
                "price.supersedes", "a new version must keep the product and currency of the old one"
            )
        price = dataclasses.replace(price, version=previous.version + 1)
    else:
        price = dataclasses.replace(price, version=1)
    if price.lookup_key and transfer_lookup_key:
        await uow.entities.clear_lookup_key(Price, price.lookup_key)
    return await uow.entities.add(_with_new_id(uow, price))


async def create_plan(uow: UnitOfWork, plan: Plan) -> Plan:
    currency = await _check_plan(uow, plan)
    return await uow.entities.add(_with_new_id(uow, dataclasses.replace(plan, currency=currency)))


async def create_addon(uow: UnitOfWork, addon: AddOn) -> AddOn:
    price = await _referenced(uow, Price, addon.price_id, "add_on.price")
    if price.recurring is None or price.is_usage:
        raise InvalidArgument.single("add_on.price", "an add-on needs a recurring, non-usage price")
    return await uow.entities.add(_with_new_id(uow, addon))


async def create_coupon(uow: UnitOfWork, coupon: Coupon) -> Coupon:
    for index, product_id in enumerate(coupon.applies_to_products):
        await _referenced(uow, Product, product_id, f"coupon.applies_to_products[{index}]")
    return await uow.entities.add(_with_new_id(uow, dataclasses.replace(coupon, times_redeemed=0)))


async def update(
    uow: UnitOfWork,
    kind: type[T],
    entity_id: str,
    changes: Mapping[str, Any],
    *,
    transfer_lookup_key: bool = False,
) -> T:
    """Apply already-validated field changes to one entity.

    Which fields may change is decided by the caller's update-mask table; prices and coupons
    only expose presentation fields there, because what they charge is immutable.
    """
    current = await uow.entities.get(kind, entity_id, for_update=True)
    updated = dataclasses.replace(current, **changes)  # type: ignore[type-var]
    if isinstance(updated, Plan):
        currency = await _check_plan(uow, updated)
        updated = dataclasses.replace(updated, currency=currency)
    lookup_key = changes.get("lookup_key")
    if lookup_key and transfer_lookup_key:
        await uow.entities.clear_lookup_key(kind, lookup_key)
    return await uow.entities.update(updated)


async def archive(uow: UnitOfWork, kind: type[T], entity_id: str) -> T:
    """Hide an entity from new sales; existing subscriptions keep billing it."""
    current = await uow.entities.get(kind, entity_id, for_update=True)
    return await uow.entities.update(dataclasses.replace(current, active=False))  # type: ignore[type-var]


async def _check_plan(uow: UnitOfWork, plan: Plan) -> str:
    """Check a plan's references and return the one currency its prices share."""
    errors = Violations()
    currencies: set[str] = set()
    if plan.seat_price_id:
        seat = await _referenced(uow, Price, plan.seat_price_id, "plan.seat_price")
        if seat.is_usage or seat.recurring is None:
            errors.add("plan.seat_price", "the seat price must be a recurring, non-usage price")
        currencies.add(seat.currency)
    for index, price_id in enumerate(plan.usage_price_ids):
        price = await _referenced(uow, Price, price_id, f"plan.usage_prices[{index}]")
        if not price.is_usage:
            errors.add(f"plan.usage_prices[{index}]", "is not a usage price")
        currencies.add(price.currency)
    for index, addon_id in enumerate(plan.included_addon_ids):
        addon = await _referenced(uow, AddOn, addon_id, f"plan.included_addons[{index}]")
        currencies.add((await uow.entities.get(Price, addon.price_id)).currency)
    if not currencies:
        errors.add("plan", "a plan needs a seat price or at least one usage price")
    elif len(currencies) > 1:
        errors.add("plan", f"all prices of a plan must share one currency, got {sorted(currencies)}")
    errors.raise_if_any()
    return currencies.pop()


async def _check_usage_binding(uow: UnitOfWork, price: Price) -> None:
    if price.usage is None:
        return
    meter = await _referenced(uow, Meter, price.usage.meter_id, "price.usage.meter")
    if not meter.active:
        raise FailedPrecondition(f"price.usage.meter: meter {meter.id!r} is archived")
    errors = Violations()
    if price.recurring is None:
        errors.add("price.recurring", "a usage price is billed per period and needs an interval")
    for index, (key, _) in enumerate(price.usage.filters):
        if key not in meter.dimensions:
            errors.add(
                f"price.usage.filters[{index}].key",
                f"meter {meter.event_name!r} has no dimension {key!r}; it has {list(meter.dimensions)}",
            )
    errors.raise_if_any()


async def _referenced(uow: UnitOfWork, kind: type[T], entity_id: str, field: str, *, lock: bool = False) -> T:
    try:
        return await uow.entities.get(kind, entity_id, for_update=lock)
    except NotFound as error:
        raise NotFound(f"{field}: {error.message}") from None


def _with_new_id(uow: UnitOfWork, entity: T) -> T:
    return dataclasses.replace(entity, id=uow.new_id(ID_PREFIXES[type(entity)]))  # type: ignore[type-var]
