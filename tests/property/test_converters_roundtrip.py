"""Round trips through the wire lose nothing: ids, metadata, instants and Decimals come back exact.

domain -> proto -> domain: what a client sends back is read by the ``*_from_proto`` converters;
the server-owned (output-only) fields, which those converters ignore on purpose (AIP-203), are
read back from the message here, so every field of every resource is covered exactly.
proto -> domain -> proto: a valid message comes back unchanged, decimals in canonical text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

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
from billing.domain.decimals import format_decimal
from billing.domain.errors import InvalidArgument
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
from billing.domain.quote import PlanSelector, PriceSelector, QuoteItem, QuoteRequest, UsageEstimate
from billing.v1 import catalog_pb2 as pb
from billing.v1 import rating_pb2 as rpb
from rating.api.converters import (
    addon_from_proto,
    addon_to_proto,
    billed_to,
    coupon_from_proto,
    coupon_to_proto,
    customer_from_proto,
    customer_to_proto,
    datetime_from_timestamp,
    meter_from_proto,
    meter_to_proto,
    plan_from_proto,
    plan_to_proto,
    price_from_proto,
    price_to_proto,
    product_from_proto,
    product_to_proto,
    quote_request_from_proto,
    timestamp_from_datetime,
)
from rating.api.converters.catalog import MAX_INTERVAL_COUNT

T = TypeVar("T")

# Conversion is fast; the deadline only makes a loaded CI machine flaky.
roundtrip = settings(max_examples=150, deadline=None)

# --- strategies for valid domain values ---------------------------------------------------------

ids = st.from_regex(r"[a-z]{2,5}_[A-Za-z0-9]{1,12}", fullmatch=True)
unique_ids = st.lists(ids, max_size=3, unique=True).map(tuple)
# Any Unicode a proto string carries (no lone surrogates: they are not UTF-8).
free_text = st.text(st.characters(codec="utf-8"), max_size=20)
required_text = free_text.filter(str.strip)
optional_key = st.none() | required_text
currencies = st.sampled_from(["USD", "EUR", "SEK", "JPY", "KWD", "BHD"])
instants = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
metadata = st.dictionaries(
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=40),
    st.text(st.characters(codec="utf-8"), max_size=500),
    max_size=4,
)


@st.composite
def amounts(draw: st.DrawFn, max_whole: int = 10**18 - 1) -> Decimal:
    """Exact decimals the wire allows: up to 18 integer digits and 12 decimal places."""
    scale = draw(st.integers(0, 12))
    whole = draw(st.integers(0, max_whole))
    if scale == 0:
        return Decimal(whole)
    fraction = draw(st.integers(0, 10**scale - 1))
    return Decimal(f"{whole}.{fraction:0{scale}d}")


positive = amounts().filter(lambda value: value > 0)
percentages = st.just(Decimal(100)) | amounts(max_whole=99)


@st.composite
def bounds(draw: st.DrawFn) -> list[Decimal | None]:
    """Sorted, distinct, positive bounds ending with the open tier."""
    return [*sorted(draw(st.lists(positive, max_size=4, unique=True))), None]


@st.composite
def tiers(draw: st.DrawFn) -> tuple[Tier, ...]:
    return tuple(Tier(up_to, draw(amounts()), draw(amounts())) for up_to in draw(bounds()))


@st.composite
def percentage_tiers(draw: st.DrawFn) -> GraduatedPercentage:
    return GraduatedPercentage(
        tuple(PercentageTier(up_to, draw(percentages), draw(amounts())) for up_to in draw(bounds()))
    )


@st.composite
def percentage_models(draw: st.DrawFn) -> Percentage:
    low, high = draw(st.none() | amounts()), draw(st.none() | amounts())
    if low is not None and high is not None and low > high:
        low, high = high, low
    return Percentage(
        rate=draw(percentages),
        fixed_amount=draw(amounts()),
        min_per_transaction=low,
        max_per_transaction=high,
        free_transactions=draw(st.integers(0, 2**31 - 1)),
    )


models: st.SearchStrategy[PriceModel] = st.one_of(
    st.builds(Flat, amounts()),
    st.builds(PerUnit, amounts()),
    st.builds(Package, amounts(), positive, st.sampled_from(PackageRounding), amounts()),
    st.builds(Graduated, tiers()),
    st.builds(Volume, tiers()),
    percentage_models(),
    percentage_tiers(),
)


@st.composite
def recurrings(draw: st.DrawFn) -> Recurring:
    interval = draw(st.sampled_from(Interval))
    return Recurring(interval, draw(st.integers(1, MAX_INTERVAL_COUNT[interval])))


@st.composite
def usage_bindings(draw: st.DrawFn) -> UsageBinding:
    keys = draw(st.lists(required_text, max_size=3, unique=True))
    return UsageBinding(draw(ids), tuple((key, draw(required_text)) for key in keys))


@st.composite
def prices(draw: st.DrawFn) -> Price:
    usage = draw(st.none() | usage_bindings())
    # A usage price is billed per period, so it always has one.
    recurring = draw(recurrings()) if usage else draw(st.none() | recurrings())
    return Price(
        id=draw(ids),
        product_id=draw(ids),
        currency=draw(currencies),
        model=draw(models),
        recurring=recurring,
        usage=usage,
        lookup_key=draw(optional_key),
        nickname=draw(free_text),
        version=draw(st.integers(1, 1000)),
        supersedes=draw(st.none() | ids),
        active=draw(st.booleans()),
        metadata=draw(metadata),
        created_at=draw(st.none() | instants),
    )


products = st.builds(
    Product,
    id=ids,
    name=required_text,
    description=free_text,
    tax_code=free_text,
    active=st.booleans(),
    metadata=metadata,
    created_at=st.none() | instants,
)


@st.composite
def meters(draw: st.DrawFn) -> Meter:
    aggregation = draw(st.sampled_from(Aggregation))
    return Meter(
        id=draw(ids),
        event_name=draw(required_text),
        display_name=draw(required_text),
        aggregation=aggregation,
        value_property=draw(required_text) if aggregation.needs_value_property else "",
        dimensions=tuple(draw(st.lists(required_text, max_size=3, unique=True))),
        active=draw(st.booleans()),
        created_at=draw(st.none() | instants),
    )


plans = st.builds(
    Plan,
    id=ids,
    name=required_text,
    seat_price_id=st.none() | ids,
    usage_price_ids=unique_ids,
    included_addon_ids=unique_ids,
    lookup_key=optional_key,
    description=free_text,
    active=st.booleans(),
    metadata=metadata,
    created_at=st.none() | instants,
)

addons = st.builds(
    AddOn,
    id=ids,
    name=required_text,
    price_id=ids,
    active=st.booleans(),
    metadata=metadata,
    created_at=st.none() | instants,
)


@st.composite
def coupons(draw: st.DrawFn) -> Coupon:
    duration = draw(st.sampled_from(CouponDuration))
    by_amount = draw(st.booleans())
    return Coupon(
        id=draw(ids),
        code=draw(required_text),
        name=draw(required_text),
        duration=duration,
        percent_off=None if by_amount else draw(percentages.filter(lambda value: value > 0)),
        amount_off=draw(st.integers(1, 2**63 - 1)) if by_amount else None,
        currency=draw(currencies) if by_amount else None,
        duration_in_months=draw(st.integers(1, 2**31 - 1)) if duration is CouponDuration.REPEATING else None,
        applies_to_products=draw(unique_ids),
        max_redemptions=draw(st.none() | st.integers(1, 2**31 - 1)),
        redeem_by=draw(st.none() | instants),
        times_redeemed=draw(st.integers(0, 2**31 - 1)),
        active=draw(st.booleans()),
        metadata=draw(metadata),
        created_at=draw(st.none() | instants),
    )


addresses = st.builds(
    Address,
    line1=free_text,
    line2=free_text,
    city=free_text,
    postal_code=free_text,
    state=free_text,
    country=st.just("") | st.from_regex(r"[A-Z]{2}", fullmatch=True),
)
tax_ids = st.builds(TaxId, st.from_regex(r"[a-z]{2}_[a-z]{2,4}", fullmatch=True), required_text)
customers = st.builds(
    Customer,
    id=ids,
    name=required_text,
    currency=currencies,
    time_zone=st.sampled_from(["UTC", "Europe/Stockholm", "America/New_York", "Asia/Kolkata"]),
    email=st.just("") | st.from_regex(r"[a-z0-9.+]{1,10}@[a-z0-9-]{1,10}\.[a-z]{2,6}", fullmatch=True),
    billing_address=addresses,
    tax_ids=st.lists(tax_ids, max_size=2).map(tuple),
    crm_account_id=optional_key,
    accounting_id=optional_key,
    metadata=metadata,
    test_clock_id=st.none() | ids,
    has_payment_method=st.booleans(),
    created_at=st.none() | instants,
    updated_at=st.none() | instants,
)

# --- reading back the fields only the server writes -------------------------------------------


def _time(msg: Any, name: str) -> datetime | None:
    return datetime_from_timestamp(getattr(msg, name)) if msg.HasField(name) else None


def _server_owned(entity: T, msg: Any) -> T:
    """``entity`` with the output-only fields of ``msg``: what a client reads, not what it sends."""
    fields: dict[str, Any] = {"created_at": _time(msg, "create_time")}
    if isinstance(entity, Customer):
        fields["updated_at"] = _time(msg, "update_time")
    else:
        fields["active"] = not msg.archived
    if isinstance(entity, Price):
        fields["version"] = msg.version
    if isinstance(entity, Coupon):
        fields["times_redeemed"] = msg.times_redeemed
    return replace(entity, **fields)  # type: ignore[type-var]


def _fresh(entity: T) -> T:
    """``entity`` as a create makes it: every server-owned field at its initial value."""
    fields: dict[str, Any] = {"created_at": None}
    if not isinstance(entity, Customer):
        fields["active"] = True
    if isinstance(entity, Price):
        fields["version"] = 1
    if isinstance(entity, Coupon):
        fields["times_redeemed"] = 0
    if isinstance(entity, Customer):
        fields["updated_at"] = None
    return replace(entity, **fields)  # type: ignore[type-var]


def _assert_round_trip(
    entity: T, to_proto: Callable[[T], Any], from_proto: Callable[..., T], prefix: str
) -> None:
    entity_id = entity.id  # type: ignore[attr-defined]
    msg = to_proto(entity)
    assert msg.name == f"{prefix}/{entity_id}"
    back = from_proto(msg, id=entity_id)
    assert back == _fresh(entity)
    assert _server_owned(back, msg) == entity
    # And a valid message is a fixed point of proto -> domain -> proto.
    fresh = to_proto(_fresh(entity))
    assert to_proto(from_proto(fresh, id=entity_id)) == fresh


# --- domain -> proto -> domain ------------------------------------------------------------------


@roundtrip
@given(products)
def test_a_product_survives_the_wire(product: Product) -> None:
    _assert_round_trip(product, product_to_proto, product_from_proto, "products")


@roundtrip
@given(meters())
def test_a_meter_survives_the_wire(meter: Meter) -> None:
    _assert_round_trip(meter, meter_to_proto, meter_from_proto, "meters")


@settings(max_examples=400, deadline=None)
@given(prices())
def test_a_price_of_every_model_survives_the_wire_with_exact_decimals(price: Price) -> None:
    _assert_round_trip(price, price_to_proto, price_from_proto, "prices")


@roundtrip
@given(plans)
def test_a_plan_survives_the_wire(plan: Plan) -> None:
    _assert_round_trip(plan, plan_to_proto, plan_from_proto, "plans")


@roundtrip
@given(addons)
def test_an_addon_survives_the_wire(addon: AddOn) -> None:
    _assert_round_trip(addon, addon_to_proto, addon_from_proto, "addons")


@roundtrip
@given(coupons())
def test_a_coupon_of_either_kind_survives_the_wire(coupon: Coupon) -> None:
    _assert_round_trip(coupon, coupon_to_proto, coupon_from_proto, "coupons")


@roundtrip
@given(customers)
def test_a_customer_survives_the_wire(customer: Customer) -> None:
    _assert_round_trip(customer, customer_to_proto, customer_from_proto, "customers")


@roundtrip
@given(instants)
def test_an_instant_survives_the_wire_to_the_microsecond(instant: datetime) -> None:
    assert datetime_from_timestamp(timestamp_from_datetime(instant)) == instant


# --- proto -> domain -> proto -------------------------------------------------------------------


@st.composite
def decimal_texts(draw: st.DrawFn) -> str:
    """Valid but not canonical: trailing zeros after the point are allowed on input."""
    value = draw(amounts())
    text = format_decimal(value)
    zeros = draw(st.integers(0, 12 - (len(text) - text.index(".") - 1 if "." in text else 0)))
    if zeros:
        text = f"{text}{'' if '.' in text else '.'}{'0' * zeros}"
    return text


@roundtrip
@given(decimal_texts())
def test_a_decimal_comes_back_in_canonical_text_with_the_same_value(text: str) -> None:
    msg = pb.Price(product="products/p_1", currency="USD", per_unit=pb.PerUnitModel(unit_amount=text))
    wire = price_to_proto(price_from_proto(msg, id="p_2")).per_unit.unit_amount
    assert Decimal(wire) == Decimal(text)
    assert wire == format_decimal(Decimal(text))


def _price_selector(selector: PriceSelector) -> rpb.PriceSelector:
    if selector.price_id:
        return rpb.PriceSelector(price=f"prices/{selector.price_id}")
    return rpb.PriceSelector(lookup_key=selector.lookup_key or "")


def _request_to_proto(request: QuoteRequest) -> rpb.QuoteRequest:
    """The wire form of a cart, written out by hand: the server never sends one."""
    plan = request.plan
    return rpb.QuoteRequest(
        currency=request.currency,
        plan=None
        if plan is None
        else rpb.PlanSelector(plan=f"plans/{plan.plan_id}")
        if plan.plan_id
        else rpb.PlanSelector(lookup_key=plan.lookup_key or ""),
        seats=format_decimal(request.seats) if plan else "",
        items=[
            rpb.QuoteItem(price=_price_selector(item.price), quantity=format_decimal(item.quantity))
            for item in request.items
        ],
        add_ons=[f"addons/{addon_id}" for addon_id in request.add_on_ids],
        usage=[
            rpb.UsageEstimate(
                meter=estimate.meter,
                properties=[pb.PropertyFilter(key=k, value=v) for k, v in estimate.properties],
                quantity=format_decimal(estimate.quantity),
                transaction_count=estimate.transaction_count,
            )
            for estimate in request.usage
        ],
        coupon_codes=request.coupon_codes,
    )


@st.composite
def quote_requests(draw: st.DrawFn) -> QuoteRequest:
    plan = draw(
        st.none() | st.builds(PlanSelector, plan_id=ids) | st.builds(PlanSelector, lookup_key=required_text)
    )
    selectors = st.builds(PriceSelector, price_id=ids) | st.builds(PriceSelector, lookup_key=required_text)
    keys = st.lists(required_text, max_size=2, unique=True)
    estimates = st.builds(
        UsageEstimate,
        meter=st.from_regex(r"[a-z]{1,8}\.[a-z]{1,8}", fullmatch=True),
        quantity=amounts(),
        properties=keys.map(lambda ks: tuple((k, "v") for k in ks)),
        transaction_count=st.integers(0, 2**63 - 1),
    )
    return QuoteRequest(
        currency=draw(currencies),
        plan=plan,
        seats=draw(amounts()) if plan else Decimal(1),
        items=tuple(draw(st.lists(st.builds(QuoteItem, selectors, amounts()), max_size=3))),
        add_on_ids=draw(unique_ids),
        usage=tuple(draw(st.lists(estimates, max_size=2))),
        coupon_codes=tuple(draw(st.lists(required_text, max_size=2, unique=True))),
    )


@roundtrip
@given(quote_requests())
def test_a_quote_request_reads_back_exactly(request: QuoteRequest) -> None:
    msg = _request_to_proto(request)
    _, currency = billed_to(msg)
    assert quote_request_from_proto(msg, currency) == request


# --- junk never crashes a converter ---------------------------------------------------------------

junk = st.text(max_size=30)


def _refused_fields(convert: Callable[[], object]) -> list[str]:
    """The fields an InvalidArgument names, or [] when the input was valid; anything else fails."""
    try:
        convert()
    except InvalidArgument as error:
        return [violation.field for violation in error.violations] or ["<no violation>"]
    return []


@settings(max_examples=150, deadline=None)
@given(
    st.builds(
        pb.Price,
        product=junk,
        currency=junk,
        graduated=st.builds(pb.TieredModel, tiers=st.lists(st.builds(pb.Tier, up_to=junk, unit_amount=junk))),
        recurring=st.builds(
            pb.Recurring, interval=st.integers(-3, 7), interval_count=st.integers(-(2**31), 2**31 - 1)
        ),
        usage=st.builds(pb.UsagePricing, meter=junk),
        supersedes=junk,
        metadata=st.dictionaries(junk, junk, max_size=3),
    )
)
def test_a_junk_price_is_either_a_price_or_an_invalid_argument(msg: pb.Price) -> None:
    fields = _refused_fields(lambda: price_from_proto(msg, id="p_1"))
    assert all(field.startswith("price.") for field in fields)


@settings(max_examples=150, deadline=None)
@given(
    st.builds(
        pb.Coupon,
        code=junk,
        display_name=junk,
        percent_off=junk,
        currency=junk,
        duration=st.integers(-1, 5),
        duration_in_months=st.integers(-5, 5),
        redeem_by=st.builds(Timestamp, seconds=st.integers(-(2**62), 2**62), nanos=st.integers(0, 10**9 - 1)),
    )
)
def test_a_junk_coupon_is_either_a_coupon_or_an_invalid_argument(msg: pb.Coupon) -> None:
    fields = _refused_fields(lambda: coupon_from_proto(msg, id="c_1"))
    assert all(field.startswith("coupon.") for field in fields)
