"""Catalog resources on the wire: products, meters, prices (every model), plans, add-ons, coupons.

Units (catalog.proto): unit prices, rates and quantities are exact decimal strings in MINOR
units, so they map to domain ``Decimal`` minor units unchanged; ``Coupon.amount_off`` is int64
minor units. Output-only fields (name, archived, version, times_redeemed, create_time) are
written outbound and ignored inbound (AIP-203): the id and every server-owned value come from
the server, never from what a client echoes back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal

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
from billing.domain.decimals import format_decimal
from billing.domain.pricing import (
    Flat,
    Graduated,
    GraduatedPercentage,
    Package,
    PackageRounding,
    Percentage,
    PercentageTier,
    PerUnit,
    PriceModel,
    Tier,
    Volume,
)
from billing.v1 import catalog_pb2 as pb
from rating.api.converters.common import (
    Checker,
    convert,
    optional_timestamp,
    read_metadata,
    read_optional,
    read_required,
    read_text,
    updatable,
)
from rating.api.converters.common import (
    changes_from_mask as changes_from_mask,  # re-exported: servicers call it with *_MASK
)
from rating.api.converters.resources import format_name, format_optional_name

_ZERO = Decimal(0)
_HUNDRED = Decimal(100)

_INTERVALS: dict[pb.Interval.ValueType, Interval] = {
    pb.INTERVAL_DAY: Interval.DAY,
    pb.INTERVAL_WEEK: Interval.WEEK,
    pb.INTERVAL_MONTH: Interval.MONTH,
    pb.INTERVAL_YEAR: Interval.YEAR,
}
_AGGREGATIONS: dict[pb.Aggregation.ValueType, Aggregation] = {
    pb.AGGREGATION_SUM: Aggregation.SUM,
    pb.AGGREGATION_COUNT: Aggregation.COUNT,
    pb.AGGREGATION_MAX: Aggregation.MAX,
    pb.AGGREGATION_UNIQUE_COUNT: Aggregation.UNIQUE_COUNT,
    pb.AGGREGATION_LATEST: Aggregation.LATEST,
}
_DURATIONS: dict[pb.CouponDuration.ValueType, CouponDuration] = {
    pb.COUPON_DURATION_ONCE: CouponDuration.ONCE,
    pb.COUPON_DURATION_REPEATING: CouponDuration.REPEATING,
    pb.COUPON_DURATION_FOREVER: CouponDuration.FOREVER,
}
_ROUNDINGS: dict[pb.PackageRounding.ValueType, PackageRounding] = {
    pb.PACKAGE_ROUNDING_UP: PackageRounding.UP,
    pb.PACKAGE_ROUNDING_DOWN: PackageRounding.DOWN,
}
INTERVALS_OUT = {member: number for number, member in _INTERVALS.items()}
_AGGREGATIONS_OUT = {member: number for number, member in _AGGREGATIONS.items()}
_DURATIONS_OUT = {member: number for number, member in _DURATIONS.items()}
_ROUNDINGS_OUT = {member: number for number, member in _ROUNDINGS.items()}

# NOTE: Stripe's rule: at most three years between two bills, whatever the unit. Longer
# intervals are almost always a typo (interval_count 12 with INTERVAL_YEAR) and would defer
# revenue recognition and dunning for a decade.
MAX_INTERVAL_COUNT: Mapping[Interval, int] = {
    Interval.DAY: 3 * 365,
    Interval.WEEK: 3 * 52,
    Interval.MONTH: 3 * 12,
    Interval.YEAR: 3,
}


# --- products -----------------------------------------------------------------------------


def product_from_proto(msg: pb.Product, field: str = "product", *, id: str = "") -> Product:
    return convert(field, lambda c: _product(msg, c, id))


def _product(msg: pb.Product, c: Checker, product_id: str) -> Product:
    return Product(
        id=product_id,
        name=c.required(msg.display_name, "display_name"),
        description=msg.description,
        tax_code=msg.tax_code,
        metadata=c.metadata(msg.metadata),
    )


def product_to_proto(product: Product) -> pb.Product:
    return pb.Product(
        name=format_name("products", product.id),
        display_name=product.name,
        description=product.description,
        tax_code=product.tax_code,
        archived=not product.active,
        metadata=dict(product.metadata),
        create_time=optional_timestamp(product.created_at),
    )


PRODUCT_MASK = updatable(
    pb.Product,
    {
        "display_name": ("name", read_required("display_name")),
        "description": ("description", read_text("description")),
        "tax_code": ("tax_code", read_text("tax_code")),
        "metadata": ("metadata", read_metadata),
    },
)


def product_changes(msg: pb.Product, paths: Iterable[str], field: str = "product") -> dict[str, object]:
    return changes_from_mask(msg, paths, PRODUCT_MASK, field)


# --- meters -------------------------------------------------------------------------------


def meter_from_proto(msg: pb.Meter, field: str = "meter", *, id: str = "") -> Meter:
    return convert(field, lambda c: _meter(msg, c, id))


def _meter(msg: pb.Meter, c: Checker, meter_id: str) -> Meter | None:
    event_name = c.required(msg.event_name, "event_name")
    display_name = c.required(msg.display_name, "display_name")
    aggregation = c.enum(msg.aggregation, _AGGREGATIONS, "aggregation")
    dimensions = _dimensions(msg.dimensions, c)
    if aggregation is None:
        return None
    _check_value_property(msg.value_property, aggregation, c)
    return Meter(
        id=meter_id,
        event_name=event_name,
        display_name=display_name,
        aggregation=aggregation,
        value_property=msg.value_property,
        dimensions=dimensions,
    )


def _check_value_property(value_property: str, aggregation: Aggregation, c: Checker) -> None:
    if aggregation.needs_value_property and not value_property.strip():
        c.add("value_property", f"is required for {aggregation.name} meters")
    elif not aggregation.needs_value_property and value_property:
        # A COUNT meter ignores values; accepting one would suggest it sums them.
        c.add("value_property", "must be empty for COUNT meters, which count events")


def _dimensions(values: Sequence[str], c: Checker) -> tuple[str, ...]:
    seen: set[str] = set()  # not values[:index]: that is quadratic, 22 s for 30,000 entries
    for index, value in enumerate(values):
        path = f"dimensions[{index}]"
        c.required(value, path)
        if value in seen:
            c.add(path, f"duplicate dimension {value[:40]!r}")
        seen.add(value)
    return tuple(values)


def meter_to_proto(meter: Meter) -> pb.Meter:
    return pb.Meter(
        name=format_name("meters", meter.id),
        event_name=meter.event_name,
        display_name=meter.display_name,
        aggregation=_AGGREGATIONS_OUT[meter.aggregation],
        value_property=meter.value_property,
        dimensions=meter.dimensions,
        archived=not meter.active,
        create_time=optional_timestamp(meter.created_at),
    )


# NOTE: event_name, aggregation and value_property define what past usage means; changing them
# would silently re-rate history, so a different meaning is a new meter.
METER_MASK = updatable(
    pb.Meter,
    {
        "display_name": ("display_name", read_required("display_name")),
        "dimensions": ("dimensions", lambda m, c: _dimensions(m.dimensions, c)),
    },
)


def meter_changes(msg: pb.Meter, paths: Iterable[str], field: str = "meter") -> dict[str, object]:
    return changes_from_mask(msg, paths, METER_MASK, field)


# --- recurring and usage ------------------------------------------------------------------


def read_recurring(msg: pb.Recurring, c: Checker) -> Recurring | None:
    interval = c.enum(msg.interval, _INTERVALS, "interval")
    count = msg.interval_count or 1
    if interval is None:
        return None
    cap = MAX_INTERVAL_COUNT[interval]
    if not 1 <= count <= cap:
        c.add("interval_count", f"must be between 1 and {cap} for {interval.value} intervals")
    return Recurring(interval, count)


def recurring_to_proto(recurring: Recurring) -> pb.Recurring:
    return pb.Recurring(interval=INTERVALS_OUT[recurring.interval], interval_count=recurring.interval_count)


def read_properties(items: Iterable[pb.PropertyFilter], c: Checker, name: str) -> tuple[tuple[str, str], ...]:
    """Key/value pairs; a repeated key is refused, since one event property has one value."""
    pairs: list[tuple[str, str]] = []
    for index, item in enumerate(items):
        entry = c.at(f"{name}[{index}]")
        entry.required(item.key, "key")
        entry.required(item.value, "value")
        if any(key == item.key for key, _ in pairs):
            entry.add("key", f"duplicate key {item.key[:40]!r}")
        pairs.append((item.key, item.value))
    return tuple(pairs)


def _usage(msg: pb.UsagePricing, c: Checker) -> UsageBinding:
    meter_id = c.name(msg.meter, "meters", "meter")
    return UsageBinding(meter_id, read_properties(msg.filters, c, "filters"))


# --- price models -------------------------------------------------------------------------


def _tiers(tiers: Iterable[pb.Tier], c: Checker) -> tuple[Tier, ...]:
    result: list[Tier] = []
    for index, tier in enumerate(tiers):
        at = c.at(f"tiers[{index}]")
        up_to = at.optional_decimal(tier.up_to, "up_to")
        unit_amount = at.decimal(tier.unit_amount, "unit_amount", default=_ZERO)
        flat_amount = at.decimal(tier.flat_amount, "flat_amount", default=_ZERO)
        result.append(Tier(up_to, unit_amount, flat_amount))
    return tuple(result)


def _percentage_tiers(tiers: Iterable[pb.PercentageTier], c: Checker) -> tuple[PercentageTier, ...]:
    result: list[PercentageTier] = []
    for index, tier in enumerate(tiers):
        at = c.at(f"tiers[{index}]")
        up_to = at.optional_decimal(tier.up_to, "up_to")
        rate = at.decimal(tier.rate, "rate")
        flat_amount = at.decimal(tier.flat_amount, "flat_amount", default=_ZERO)
        result.append(PercentageTier(up_to, rate, flat_amount))
    return tuple(result)


def _package(msg: pb.PackageModel, c: Checker) -> Package:
    # UNSPECIFIED means UP, as documented: billing every started package is the safe default.
    rounding = _ROUNDINGS.get(msg.rounding) if msg.rounding else PackageRounding.UP
    if rounding is None:
        c.add("rounding", f"unknown value {msg.rounding}")
    return Package(
        package_amount=c.decimal(msg.package_amount, "package_amount"),
        package_size=c.decimal(msg.package_size, "package_size"),
        rounding=rounding or PackageRounding.UP,
        free_units=c.decimal(msg.free_units, "free_units", default=_ZERO),
    )


def _percentage(msg: pb.PercentageModel, c: Checker) -> Percentage:
    return Percentage(
        rate=c.decimal(msg.rate, "rate"),
        fixed_amount=c.decimal(msg.fixed_amount, "fixed_amount", default=_ZERO),
        min_per_transaction=c.optional_decimal(msg.min_per_transaction, "min_per_transaction"),
        max_per_transaction=c.optional_decimal(msg.max_per_transaction, "max_per_transaction"),
        free_transactions=msg.free_transactions,
    )


# One reader per oneof case; the oneof names are the domain models' ``kind``s.
_MODEL_READERS: Mapping[str, Callable[[pb.Price, Checker], PriceModel]] = {
    "flat": lambda m, c: Flat(c.decimal(m.flat.amount, "amount")),
    "per_unit": lambda m, c: PerUnit(c.decimal(m.per_unit.unit_amount, "unit_amount")),
    "package": lambda m, c: _package(m.package, c),
    "graduated": lambda m, c: Graduated(_tiers(m.graduated.tiers, c)),
    "volume": lambda m, c: Volume(_tiers(m.volume.tiers, c)),
    "percentage": lambda m, c: _percentage(m.percentage, c),
    "graduated_percentage": lambda m, c: GraduatedPercentage(
        _percentage_tiers(m.graduated_percentage.tiers, c)
    ),
}


def _model(msg: pb.Price, c: Checker) -> PriceModel | None:
    kind = msg.WhichOneof("model")
    if kind is None:
        c.add("model", "set exactly one of " + ", ".join(_MODEL_READERS))
        return None
    at = c.at(kind)
    before = c.failures
    model = _MODEL_READERS[kind](msg, at)
    if c.failures == before:
        # The model's own rules (sorted tiers, an open last tier, rates within 0..100) only
        # make sense once every number parsed; a placeholder would add bogus violations.
        model.validate(c.errors, at.field)
    return model


def _model_to_proto(model: PriceModel, msg: pb.Price) -> None:
    match model:
        case Flat():
            msg.flat.amount = format_decimal(model.amount)
        case PerUnit():
            msg.per_unit.unit_amount = format_decimal(model.unit_amount)
        case Package():
            msg.package.CopyFrom(_package_to_proto(model))
        case Graduated():
            msg.graduated.tiers.extend(_tier_to_proto(tier) for tier in model.tiers)
        case Volume():
            msg.volume.tiers.extend(_tier_to_proto(tier) for tier in model.tiers)
        case Percentage():
            msg.percentage.CopyFrom(_percentage_to_proto(model))
        case GraduatedPercentage():
            msg.graduated_percentage.tiers.extend(_percentage_tier_to_proto(t) for t in model.tiers)
        case _:
            raise TypeError(f"no wire form for price model {type(model).__name__}")


def _optional_decimal(value: Decimal | None) -> str:
    return "" if value is None else format_decimal(value)


def _tier_to_proto(tier: Tier) -> pb.Tier:
    return pb.Tier(
        up_to=_optional_decimal(tier.up_to),
        unit_amount=format_decimal(tier.unit_amount),
        flat_amount=format_decimal(tier.flat_amount),
    )


def _percentage_tier_to_proto(tier: PercentageTier) -> pb.PercentageTier:
    return pb.PercentageTier(
        up_to=_optional_decimal(tier.up_to),
        rate=format_decimal(tier.rate),
        flat_amount=format_decimal(tier.flat_amount),
    )


def _package_to_proto(model: Package) -> pb.PackageModel:
    return pb.PackageModel(
        package_amount=format_decimal(model.package_amount),
        package_size=format_decimal(model.package_size),
        rounding=_ROUNDINGS_OUT[model.rounding],
        free_units=format_decimal(model.free_units),
    )


def _percentage_to_proto(model: Percentage) -> pb.PercentageModel:
    return pb.PercentageModel(
        rate=format_decimal(model.rate),
        fixed_amount=format_decimal(model.fixed_amount),
        min_per_transaction=_optional_decimal(model.min_per_transaction),
        max_per_transaction=_optional_decimal(model.max_per_transaction),
        free_transactions=model.free_transactions,
    )


# --- prices -------------------------------------------------------------------------------


def price_from_proto(msg: pb.Price, field: str = "price", *, id: str = "") -> Price:
    """A price to create; ``id`` is the one the server assigned."""
    return convert(field, lambda c: read_price(msg, c, price_id=id))


def read_price(msg: pb.Price, c: Checker, *, price_id: str, product_required: bool = True) -> Price | None:
    """A price, recording violations in ``c``; an inline quote price may omit its product."""
    product_id = ""
    if msg.product or product_required:
        product_id = c.name(msg.product, "products", "product")
    currency = c.currency(msg.currency)
    model = _model(msg, c)
    recurring, usage = _billing(msg, c)
    supersedes = c.optional_name(msg.supersedes, "prices", "supersedes")
    metadata = c.metadata(msg.metadata)
    if model is None:
        return None
    return Price(
        id=price_id,
        product_id=product_id,
        currency=currency,
        model=model,
        recurring=recurring,
        usage=usage,
        lookup_key=msg.lookup_key or None,
        nickname=msg.nickname,
        supersedes=supersedes,
        metadata=metadata,
    )


def _billing(msg: pb.Price, c: Checker) -> tuple[Recurring | None, UsageBinding | None]:
    """How often the price bills, and from which meter for a usage price."""
    recurring = read_recurring(msg.recurring, c.at("recurring")) if msg.HasField("recurring") else None
    usage = _usage(msg.usage, c.at("usage")) if msg.HasField("usage") else None
    if usage is not None and not msg.HasField("recurring"):
        # Usage is billed in arrears per period; without a period there is nothing to close.
        c.add("recurring", "is required for usage prices")
    return recurring, usage


def price_to_proto(price: Price) -> pb.Price:
    msg = pb.Price(
        name=format_name("prices", price.id),
        product=format_optional_name("products", price.product_id),
        currency=price.currency,
        recurring=None if price.recurring is None else recurring_to_proto(price.recurring),
        usage=None if price.usage is None else _usage_to_proto(price.usage),
        lookup_key=price.lookup_key or "",
        nickname=price.nickname,
        version=price.version,
        supersedes=format_optional_name("prices", price.supersedes),
        archived=not price.active,
        metadata=dict(price.metadata),
        create_time=optional_timestamp(price.created_at),
    )
    _model_to_proto(price.model, msg)
    return msg


def _usage_to_proto(usage: UsageBinding) -> pb.UsagePricing:
    return pb.UsagePricing(
        meter=format_name("meters", usage.meter_id),
        filters=[pb.PropertyFilter(key=key, value=value) for key, value in usage.filters],
    )


# Prices are immutable (catalog.proto): a new amount is a new version, not an update.
PRICE_MASK = updatable(
    pb.Price,
    {
        "nickname": ("nickname", read_text("nickname")),
        "lookup_key": ("lookup_key", read_optional("lookup_key")),
        "metadata": ("metadata", read_metadata),
    },
)


def price_changes(msg: pb.Price, paths: Iterable[str], field: str = "price") -> dict[str, object]:
    return changes_from_mask(msg, paths, PRICE_MASK, field)


# --- plans --------------------------------------------------------------------------------


def plan_from_proto(msg: pb.Plan, field: str = "plan", *, id: str = "") -> Plan:
    return convert(field, lambda c: _plan(msg, c, id))


def _plan(msg: pb.Plan, c: Checker, plan_id: str) -> Plan:
    return Plan(
        id=plan_id,
        name=c.required(msg.display_name, "display_name"),
        seat_price_id=c.optional_name(msg.seat_price, "prices", "seat_price"),
        usage_price_ids=c.names(msg.usage_prices, "prices", "usage_prices"),
        included_addon_ids=c.names(msg.included_addons, "addons", "included_addons"),
        lookup_key=msg.lookup_key or None,
        description=msg.description,
        metadata=c.metadata(msg.metadata),
    )


def plan_to_proto(plan: Plan) -> pb.Plan:
    return pb.Plan(
        name=format_name("plans", plan.id),
        display_name=plan.name,
        description=plan.description,
        seat_price=format_optional_name("prices", plan.seat_price_id),
        usage_prices=[format_name("prices", price_id) for price_id in plan.usage_price_ids],
        included_addons=[format_name("addons", addon_id) for addon_id in plan.included_addon_ids],
        lookup_key=plan.lookup_key or "",
        currency=plan.currency,
        archived=not plan.active,
        metadata=dict(plan.metadata),
        create_time=optional_timestamp(plan.created_at),
    )


# NOTE: a plan's prices can be swapped in place (Lago's plan edits): the prices themselves are
# immutable versions, so the swap is one atomic catalog change that every quote sees whole.
PLAN_MASK = updatable(
    pb.Plan,
    {
        "display_name": ("name", read_required("display_name")),
        "description": ("description", read_text("description")),
        "lookup_key": ("lookup_key", read_optional("lookup_key")),
        "seat_price": ("seat_price_id", lambda m, c: c.optional_name(m.seat_price, "prices", "seat_price")),
        "usage_prices": ("usage_price_ids", lambda m, c: c.names(m.usage_prices, "prices", "usage_prices")),
        "included_addons": (
            "included_addon_ids",
            lambda m, c: c.names(m.included_addons, "addons", "included_addons"),
        ),
        "metadata": ("metadata", read_metadata),
    },
)


def plan_changes(msg: pb.Plan, paths: Iterable[str], field: str = "plan") -> dict[str, object]:
    return changes_from_mask(msg, paths, PLAN_MASK, field)


# --- add-ons ------------------------------------------------------------------------------


def addon_from_proto(msg: pb.AddOn, field: str = "add_on", *, id: str = "") -> AddOn:
    return convert(field, lambda c: _addon(msg, c, id))


def _addon(msg: pb.AddOn, c: Checker, addon_id: str) -> AddOn:
    return AddOn(
        id=addon_id,
        name=c.required(msg.display_name, "display_name"),
        price_id=c.name(msg.price, "prices", "price"),
        metadata=c.metadata(msg.metadata),
    )


def addon_to_proto(addon: AddOn) -> pb.AddOn:
    return pb.AddOn(
        name=format_name("addons", addon.id),
        display_name=addon.name,
        price=format_name("prices", addon.price_id),
        archived=not addon.active,
        metadata=dict(addon.metadata),
        create_time=optional_timestamp(addon.created_at),
    )


ADDON_MASK = updatable(
    pb.AddOn,
    {
        "display_name": ("name", read_required("display_name")),
        "metadata": ("metadata", read_metadata),
    },
)


# --- coupons ------------------------------------------------------------------------------


def coupon_from_proto(msg: pb.Coupon, field: str = "coupon", *, id: str = "") -> Coupon:
    return convert(field, lambda c: _coupon(msg, c, id))


def _coupon(msg: pb.Coupon, c: Checker, coupon_id: str) -> Coupon | None:
    code = c.required(msg.code, "code")
    name = c.required(msg.display_name, "display_name")
    percent_off, amount_off = _discount(msg, c)
    currency = _coupon_currency(msg, c)
    duration = c.enum(msg.duration, _DURATIONS, "duration")
    months = _duration_in_months(msg.duration_in_months, duration, c)
    max_redemptions = c.non_negative(msg.max_redemptions, "max_redemptions")
    redeem_by = c.timestamp(msg.redeem_by, msg.HasField("redeem_by"), "redeem_by")
    products = c.names(msg.applies_to_products, "products", "applies_to_products")
    metadata = c.metadata(msg.metadata)
    if duration is None:
        return None
    return Coupon(
        id=coupon_id,
        code=code,
        name=name,
        duration=duration,
        percent_off=percent_off,
        amount_off=amount_off,
        currency=currency,
        duration_in_months=months,
        applies_to_products=products,
        max_redemptions=max_redemptions or None,  # 0 means no limit on the wire
        redeem_by=redeem_by,
        metadata=metadata,
    )


def _discount(msg: pb.Coupon, c: Checker) -> tuple[Decimal | None, int | None]:
    # NOTE: "both set" cannot reach us: on the wire a oneof keeps the last case it reads.
    kind = msg.WhichOneof("discount")
    if kind is None:
        c.add("discount", "set exactly one of percent_off and amount_off")
        return None, None
    if kind == "amount_off":
        if msg.amount_off <= 0:
            c.add("amount_off", "must be greater than 0")
        return None, msg.amount_off
    before = c.failures
    percent = c.decimal(msg.percent_off, "percent_off")
    if c.failures == before and not _ZERO < percent <= _HUNDRED:
        c.add("percent_off", "must be greater than 0 and at most 100")
    return percent, None


def _coupon_currency(msg: pb.Coupon, c: Checker) -> str | None:
    if msg.WhichOneof("discount") == "amount_off":
        return c.currency(msg.currency)
    if msg.currency:
        # A percentage applies in any currency; a currency here means the client meant amount_off.
        c.add("currency", "is only allowed with amount_off")
    return None


def _duration_in_months(months: int, duration: CouponDuration | None, c: Checker) -> int | None:
    if duration is CouponDuration.REPEATING:
        if months <= 0:
            c.add("duration_in_months", "must be greater than 0 for COUPON_DURATION_REPEATING")
        return months
    if months != 0:
        c.add("duration_in_months", "must be 0 unless duration is COUPON_DURATION_REPEATING")
    return None


def coupon_to_proto(coupon: Coupon) -> pb.Coupon:
    msg = pb.Coupon(
        name=format_name("coupons", coupon.id),
        code=coupon.code,
        display_name=coupon.name,
        currency=coupon.currency or "",
        duration=_DURATIONS_OUT[coupon.duration],
        duration_in_months=coupon.duration_in_months or 0,
        applies_to_products=[format_name("products", p) for p in coupon.applies_to_products],
        max_redemptions=coupon.max_redemptions or 0,
        redeem_by=optional_timestamp(coupon.redeem_by),
        times_redeemed=coupon.times_redeemed,
        archived=not coupon.active,
        metadata=dict(coupon.metadata),
        create_time=optional_timestamp(coupon.created_at),
    )
    if coupon.percent_off is not None:
        msg.percent_off = format_decimal(coupon.percent_off)
    elif coupon.amount_off is not None:
        msg.amount_off = coupon.amount_off
    return msg


# The discount itself is immutable (catalog.proto): redeemed coupons must keep meaning one thing.
COUPON_MASK = updatable(
    pb.Coupon,
    {
        "display_name": ("name", read_required("display_name")),
        "metadata": ("metadata", read_metadata),
    },
)


def coupon_changes(msg: pb.Coupon, paths: Iterable[str], field: str = "coupon") -> dict[str, object]:
    return changes_from_mask(msg, paths, COUPON_MASK, field)
