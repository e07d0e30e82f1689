"""Wire <-> domain converters: every bad input is refused with the exact field path(s)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from billing.domain.catalog import (
    Aggregation,
    Catalog,
    Coupon,
    CouponDuration,
    Interval,
    Price,
    Product,
    Recurring,
)
from billing.domain.customer import Address, TaxId
from billing.domain.errors import InvalidArgument
from billing.domain.pricing import Graduated, Package, PackageRounding, PerUnit, Tier
from billing.domain.quote import PriceSelector, QuoteItem, QuoteRequest, price_quote
from billing.v1 import catalog_pb2 as pb
from billing.v1 import customer_pb2 as cpb
from billing.v1 import rating_pb2 as rpb
from rating.api.converters import (
    INLINE_PRICE_ID,
    PLAN_MASK,
    BilledTo,
    addon_from_proto,
    billed_to,
    changes_from_mask,
    coupon_changes,
    coupon_from_proto,
    customer_changes,
    customer_from_proto,
    format_name,
    meter_changes,
    meter_from_proto,
    parse_name,
    plan_changes,
    plan_from_proto,
    price_changes,
    price_from_proto,
    product_changes,
    product_from_proto,
    quote_request_from_proto,
    quote_to_proto,
)
from rating.api.converters.quotes import LineTemplates, quote_response

# --- builders of valid messages, changed one field at a time by the cases below -------------


def _price(**changes: object) -> pb.Price:
    fields: dict[str, object] = {
        "product": "products/prod_1",
        "currency": "USD",
        "per_unit": pb.PerUnitModel(unit_amount="2900"),
        "recurring": pb.Recurring(interval=pb.INTERVAL_MONTH),
    }
    fields.update(changes)
    if any(key in changes for key in ("flat", "package", "graduated", "volume", "percentage")):
        fields.pop("per_unit")
    if "graduated_percentage" in changes:
        fields.pop("per_unit")
    return pb.Price(**{key: value for key, value in fields.items() if value is not None})  # type: ignore[arg-type]


def _tiers(*bounds: str) -> pb.TieredModel:
    return pb.TieredModel(tiers=[pb.Tier(up_to=bound, unit_amount="10") for bound in bounds])


def _meter(**changes: object) -> pb.Meter:
    fields: dict[str, object] = {
        "event_name": "message.sent",
        "display_name": "Messages",
        "aggregation": pb.AGGREGATION_SUM,
        "value_property": "count",
    }
    fields.update(changes)
    return pb.Meter(**fields)  # type: ignore[arg-type]


def _coupon(**changes: object) -> pb.Coupon:
    fields: dict[str, object] = {
        "code": "WELCOME",
        "display_name": "Welcome",
        "percent_off": "10",
        "duration": pb.COUPON_DURATION_ONCE,
    }
    fields.update(changes)
    if "amount_off" in changes:
        fields.pop("percent_off", None)
    return pb.Coupon(**{key: value for key, value in fields.items() if value is not None})  # type: ignore[arg-type]


def _customer(**changes: object) -> cpb.Customer:
    fields: dict[str, object] = {"display_name": "Acme AB", "currency": "SEK"}
    fields.update(changes)
    return cpb.Customer(**fields)  # type: ignore[arg-type]


def _quote(**changes: object) -> rpb.QuoteRequest:
    fields: dict[str, object] = {
        "currency": "USD",
        "items": [rpb.QuoteItem(price=rpb.PriceSelector(price="prices/price_1"), quantity="3")],
    }
    fields.update(changes)
    return rpb.QuoteRequest(**fields)  # type: ignore[arg-type]


def _request(msg: rpb.QuoteRequest) -> QuoteRequest:
    _, currency = billed_to(msg)
    return quote_request_from_proto(msg, currency or "EUR")


_LONG_KEY = "k" * 41
_NINE = pb.PackageRounding.ValueType(9)  # a rounding this server does not know

BAD_INPUTS = [
    # decimals
    (
        "negative item quantity",
        lambda: _request(
            _quote(items=[rpb.QuoteItem(price=rpb.PriceSelector(price="prices/p"), quantity="-1")])
        ),
        ["items[0].quantity"],
    ),
    (
        "exponent notation",
        lambda: _request(_quote(usage=[rpb.UsageEstimate(meter="api.call", quantity="1e3")])),
        ["usage[0].quantity"],
    ),
    (
        "13 decimal places",
        lambda: price_from_proto(_price(per_unit=pb.PerUnitModel(unit_amount="0.0000000000001"))),
        ["price.per_unit.unit_amount"],
    ),
    (
        "missing unit amount",
        lambda: price_from_proto(_price(per_unit=pb.PerUnitModel())),
        ["price.per_unit.unit_amount"],
    ),
    (
        "missing usage quantity",
        lambda: _request(_quote(usage=[rpb.UsageEstimate(meter="api.call")])),
        ["usage[0].quantity"],
    ),
    (
        "thousands separator",
        lambda: _request(_quote(seats="1,000", plan=rpb.PlanSelector(plan="plans/pro"))),
        ["seats"],
    ),
    # currencies
    ("unknown currency", lambda: customer_from_proto(_customer(currency="XXX")), ["customer.currency"]),
    ("lower-case currency", lambda: price_from_proto(_price(currency="usd")), ["price.currency"]),
    ("missing currency", lambda: price_from_proto(_price(currency="")), ["price.currency"]),
    # tiers
    (
        "unsorted tiers",
        lambda: price_from_proto(_price(graduated=_tiers("100", "50", ""))),
        ["price.graduated.tiers[1].up_to"],
    ),
    (
        "overlapping tiers",
        lambda: price_from_proto(_price(volume=_tiers("100", "100", ""))),
        ["price.volume.tiers[1].up_to"],
    ),
    (
        "no open last tier",
        lambda: price_from_proto(_price(graduated=_tiers("100", "200"))),
        ["price.graduated.tiers[1].up_to"],
    ),
    (
        "open tier not last",
        lambda: price_from_proto(_price(graduated=_tiers("", "200", ""))),
        ["price.graduated.tiers[0].up_to"],
    ),
    ("no tiers", lambda: price_from_proto(_price(graduated=pb.TieredModel())), ["price.graduated.tiers"]),
    (
        "zero bound",
        lambda: price_from_proto(_price(graduated=_tiers("0", ""))),
        ["price.graduated.tiers[0].up_to"],
    ),
    (
        "percentage tier without rate",
        lambda: price_from_proto(
            _price(graduated_percentage=pb.GraduatedPercentageModel(tiers=[pb.PercentageTier()]))
        ),
        ["price.graduated_percentage.tiers[0].rate"],
    ),
    # other models
    ("missing model", lambda: price_from_proto(_price(per_unit=None)), ["price.model"]),
    (
        "package of zero units",
        lambda: price_from_proto(_price(package=pb.PackageModel(package_amount="100", package_size="0"))),
        ["price.package.package_size"],
    ),
    (
        "unknown package rounding",
        lambda: price_from_proto(
            _price(package=pb.PackageModel(package_amount="100", package_size="10", rounding=_NINE))
        ),
        ["price.package.rounding"],
    ),
    (
        "rate above 100",
        lambda: price_from_proto(_price(percentage=pb.PercentageModel(rate="100.5"))),
        ["price.percentage.rate"],
    ),
    (
        "minimum above maximum",
        lambda: price_from_proto(
            _price(
                percentage=pb.PercentageModel(rate="2.9", min_per_transaction="50", max_per_transaction="30")
            )
        ),
        ["price.percentage.max_per_transaction"],
    ),
    # recurring and usage
    (
        "interval unspecified",
        lambda: price_from_proto(_price(recurring=pb.Recurring())),
        ["price.recurring.interval"],
    ),
    (
        "interval above three years",
        lambda: price_from_proto(
            _price(recurring=pb.Recurring(interval=pb.INTERVAL_MONTH, interval_count=37))
        ),
        ["price.recurring.interval_count"],
    ),
    (
        "negative interval count",
        lambda: price_from_proto(_price(recurring=pb.Recurring(interval=pb.INTERVAL_DAY, interval_count=-1))),
        ["price.recurring.interval_count"],
    ),
    (
        "usage price without period",
        lambda: price_from_proto(_price(recurring=None, usage=pb.UsagePricing(meter="meters/m_1"))),
        ["price.recurring"],
    ),
    (
        "duplicate filter key",
        lambda: price_from_proto(
            _price(
                usage=pb.UsagePricing(
                    meter="meters/m_1",
                    filters=[
                        pb.PropertyFilter(key="channel", value="sms"),
                        pb.PropertyFilter(key="channel", value="email"),
                    ],
                )
            )
        ),
        ["price.usage.filters[1].key"],
    ),
    (
        "filter without value",
        lambda: price_from_proto(
            _price(usage=pb.UsagePricing(meter="meters/m_1", filters=[pb.PropertyFilter(key="channel")]))
        ),
        ["price.usage.filters[0].value"],
    ),
    # resource names
    ("name without id", lambda: price_from_proto(_price(product="products/")), ["price.product"]),
    ("name of another collection", lambda: price_from_proto(_price(product="foo/x")), ["price.product"]),
    ("missing product", lambda: price_from_proto(_price(product="")), ["price.product"]),
    ("bare id instead of name", lambda: price_from_proto(_price(product="prod_1")), ["price.product"]),
    (
        "nested name",
        lambda: addon_from_proto(pb.AddOn(display_name="SSO", price="prices/p/versions/2")),
        ["add_on.price"],
    ),
    (
        "bad usage price name",
        lambda: plan_from_proto(pb.Plan(display_name="Pro", usage_prices=["prices/a", "plans/b"])),
        ["plan.usage_prices[1]"],
    ),
    (
        "repeated usage price",
        lambda: plan_from_proto(pb.Plan(display_name="Pro", usage_prices=["prices/a", "prices/a"])),
        ["plan.usage_prices[1]"],
    ),
    ("bad supersedes", lambda: price_from_proto(_price(supersedes="prices/")), ["price.supersedes"]),
    # update masks
    ("unknown mask path", lambda: product_changes(pb.Product(), ["colour"]), ["update_mask"]),
    ("output-only mask path", lambda: product_changes(pb.Product(), ["create_time"]), ["update_mask"]),
    ("immutable currency", lambda: customer_changes(_customer(), ["currency"]), ["update_mask"]),
    ("immutable price amount", lambda: price_changes(_price(), ["per_unit"]), ["update_mask"]),
    ("immutable coupon discount", lambda: coupon_changes(_coupon(), ["percent_off"]), ["update_mask"]),
    ("immutable meter aggregation", lambda: meter_changes(_meter(), ["aggregation"]), ["update_mask"]),
    ("empty mask", lambda: product_changes(pb.Product(display_name="x"), []), ["update_mask"]),
    (
        "masked required field left empty",
        lambda: plan_changes(pb.Plan(), ["display_name"]),
        ["plan.display_name"],
    ),
    # metadata
    (
        "too many metadata keys",
        lambda: product_from_proto(
            pb.Product(display_name="Seats", metadata={f"k{i}": "v" for i in range(51)})
        ),
        ["product.metadata"],
    ),
    (
        "metadata key too long",
        lambda: product_from_proto(pb.Product(display_name="Seats", metadata={_LONG_KEY: "v"})),
        [f"product.metadata[{_LONG_KEY[:40]}]"],
    ),
    (
        "empty metadata key",
        lambda: product_from_proto(pb.Product(display_name="Seats", metadata={"": "v"})),
        ["product.metadata[]"],
    ),
    (
        "metadata value too long",
        lambda: customer_from_proto(_customer(metadata={"crm": "x" * 501})),
        ["customer.metadata[crm]"],
    ),
    # coupons
    ("coupon without discount", lambda: coupon_from_proto(_coupon(percent_off=None)), ["coupon.discount"]),
    ("percent off zero", lambda: coupon_from_proto(_coupon(percent_off="0")), ["coupon.percent_off"]),
    (
        "percent off above 100",
        lambda: coupon_from_proto(_coupon(percent_off="100.01")),
        ["coupon.percent_off"],
    ),
    ("amount off without currency", lambda: coupon_from_proto(_coupon(amount_off=500)), ["coupon.currency"]),
    (
        "amount off not positive",
        lambda: coupon_from_proto(_coupon(amount_off=-5, currency="USD")),
        ["coupon.amount_off"],
    ),
    ("percent off with currency", lambda: coupon_from_proto(_coupon(currency="USD")), ["coupon.currency"]),
    (
        "repeating without months",
        lambda: coupon_from_proto(_coupon(duration=pb.COUPON_DURATION_REPEATING)),
        ["coupon.duration_in_months"],
    ),
    (
        "once with months",
        lambda: coupon_from_proto(_coupon(duration_in_months=3)),
        ["coupon.duration_in_months"],
    ),
    ("duration unspecified", lambda: coupon_from_proto(_coupon(duration=0)), ["coupon.duration"]),
    (
        "negative max redemptions",
        lambda: coupon_from_proto(_coupon(max_redemptions=-1)),
        ["coupon.max_redemptions"],
    ),
    (
        "redeem by out of range",
        lambda: coupon_from_proto(_coupon(redeem_by=Timestamp(seconds=10**13))),
        ["coupon.redeem_by"],
    ),
    # meters
    (
        "sum without value property",
        lambda: meter_from_proto(_meter(value_property="")),
        ["meter.value_property"],
    ),
    (
        "count with value property",
        lambda: meter_from_proto(_meter(aggregation=pb.AGGREGATION_COUNT)),
        ["meter.value_property"],
    ),
    ("aggregation unspecified", lambda: meter_from_proto(_meter(aggregation=0)), ["meter.aggregation"]),
    ("unknown aggregation", lambda: meter_from_proto(_meter(aggregation=99)), ["meter.aggregation"]),
    (
        "duplicate dimension",
        lambda: meter_from_proto(_meter(dimensions=["channel", "channel"])),
        ["meter.dimensions[1]"],
    ),
    # customers
    (
        "unknown time zone",
        lambda: customer_from_proto(_customer(time_zone="Mars/Olympus")),
        ["customer.time_zone"],
    ),
    (
        "host-dependent time zone",
        lambda: customer_from_proto(_customer(time_zone="localtime")),
        ["customer.time_zone"],
    ),
    ("email without domain", lambda: customer_from_proto(_customer(email="billing")), ["customer.email"]),
    (
        "lower-case country",
        lambda: customer_from_proto(_customer(billing_address=cpb.Address(country="se"))),
        ["customer.billing_address.country"],
    ),
    (
        "tax id without type or value",
        lambda: customer_from_proto(_customer(tax_ids=[cpb.TaxId()])),
        ["customer.tax_ids[0].type", "customer.tax_ids[0].value"],
    ),
    (
        "blank display name",
        lambda: customer_from_proto(_customer(display_name="  ")),
        ["customer.display_name"],
    ),
    # quote requests
    ("neither customer nor currency", lambda: _request(_quote(currency=None)), ["billed_to"]),
    ("bad customer name", lambda: _request(_quote(currency=None, customer="customers/")), ["customer"]),
    ("quote in unknown currency", lambda: _request(_quote(currency="XXX")), ["currency"]),
    ("item without price", lambda: _request(_quote(items=[rpb.QuoteItem(quantity="1")])), ["items[0].price"]),
    (
        "empty price selector",
        lambda: _request(_quote(items=[rpb.QuoteItem(price=rpb.PriceSelector())])),
        ["items[0].price"],
    ),
    ("empty plan selector", lambda: _request(_quote(plan=rpb.PlanSelector())), ["plan"]),
    ("seats without plan", lambda: _request(_quote(seats="5")), ["seats"]),
    (
        "inline price without model",
        lambda: _request(
            _quote(items=[rpb.QuoteItem(price=rpb.PriceSelector(inline=pb.Price(currency="USD")))])
        ),
        ["items[0].price.inline.model"],
    ),
    (
        "negative transaction count",
        lambda: _request(
            _quote(usage=[rpb.UsageEstimate(meter="payment", quantity="100", transaction_count=-1)])
        ),
        ["usage[0].transaction_count"],
    ),
    (
        "bad meter name",
        lambda: _request(_quote(usage=[rpb.UsageEstimate(meter="meters/", quantity="1")])),
        ["usage[0].meter"],
    ),
    ("duplicate coupon code", lambda: _request(_quote(coupon_codes=["TEN", "TEN"])), ["coupon_codes[1]"]),
    ("bad add-on name", lambda: _request(_quote(add_ons=["prices/x"])), ["add_ons[0]"]),
]


@pytest.mark.parametrize(
    ("convert", "fields"),
    [pytest.param(convert, fields, id=case) for case, convert, fields in BAD_INPUTS],
)
def test_a_bad_input_is_refused_naming_exactly_its_field(
    convert: Callable[[], object], fields: list[str]
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        convert()
    assert [v.field for v in raised.value.violations] == fields


def test_thirteen_decimal_places_say_the_limit() -> None:
    with pytest.raises(InvalidArgument, match="at most 12 decimal places"):
        price_from_proto(_price(per_unit=pb.PerUnitModel(unit_amount="1.0000000000001")))


def test_every_bad_field_of_a_price_is_reported_at_once() -> None:
    msg = _price(
        product="prod_1",
        currency="XXX",
        graduated=pb.TieredModel(tiers=[pb.Tier(up_to="10"), pb.Tier(up_to="20")]),
        recurring=pb.Recurring(),
        metadata={"": "v"},
    )
    with pytest.raises(InvalidArgument) as raised:
        price_from_proto(msg)
    assert {v.field for v in raised.value.violations} == {
        "price.product",
        "price.currency",
        "price.graduated.tiers[1].up_to",
        "price.recurring.interval",
        "price.metadata[]",
    }


def test_every_bad_field_of_a_quote_request_is_reported_at_once() -> None:
    msg = rpb.QuoteRequest(
        items=[rpb.QuoteItem(quantity="-2"), rpb.QuoteItem(price=rpb.PriceSelector(price="x"))],
        usage=[rpb.UsageEstimate(meter="", quantity="1.5.0")],
        coupon_codes=[""],
    )
    with pytest.raises(InvalidArgument) as raised:
        billed_to(msg)
    assert [v.field for v in raised.value.violations] == [
        "billed_to",
        "items[0].price",
        "items[0].quantity",
        "items[1].price.price",
        "usage[0].meter",
        "usage[0].quantity",
        "coupon_codes[0]",
    ]


def test_every_bad_mask_path_and_value_is_reported_at_once() -> None:
    with pytest.raises(InvalidArgument) as raised:
        customer_changes(_customer(display_name="", email="x"), ["currency", "display_name", "email"])
    assert [(v.field, v.description) for v in raised.value.violations] == [
        ("update_mask", "field 'currency' cannot be changed"),
        ("customer.display_name", "is required"),
        ("customer.email", "must be an email address such as 'billing@example.com'"),
    ]


def test_a_coupon_cannot_carry_both_discounts_because_the_wire_keeps_the_last() -> None:
    both = (
        _coupon(percent_off="10").SerializeToString()
        + pb.Coupon(amount_off=500, currency="USD").SerializeToString()
    )
    coupon = coupon_from_proto(pb.Coupon.FromString(both))
    assert (coupon.percent_off, coupon.amount_off, coupon.currency) == (None, 500, "USD")


# --- what valid input becomes ---------------------------------------------------------------


def test_omitted_values_take_their_documented_defaults() -> None:
    price = price_from_proto(
        _price(
            package=pb.PackageModel(package_amount="100", package_size="10"),
            recurring=pb.Recurring(interval=pb.INTERVAL_MONTH),
        ),
        id="price_1",
    )
    assert price.model == Package(Decimal(100), Decimal(10), PackageRounding.UP, Decimal(0))
    assert price.recurring == Recurring(Interval.MONTH, 1)
    assert price.lookup_key is None
    assert price.supersedes is None
    request = _request(
        _quote(
            plan=rpb.PlanSelector(lookup_key="pro"),
            items=[rpb.QuoteItem(price=rpb.PriceSelector(lookup_key="sms"))],
        )
    )
    assert request.seats == 1
    assert request.items[0].quantity == 1
    assert customer_from_proto(_customer()).time_zone == "UTC"


def test_output_only_fields_sent_by_a_client_are_ignored() -> None:
    msg = _price(name="prices/evil", version=7, archived=True, create_time=Timestamp(seconds=5))
    price = price_from_proto(msg, id="price_9")
    assert (price.id, price.version, price.active, price.created_at) == ("price_9", 1, True, None)


def test_a_price_reads_every_field_into_the_domain() -> None:
    msg = _price(
        graduated=pb.TieredModel(
            tiers=[
                pb.Tier(up_to="1000", unit_amount="0.5"),
                pb.Tier(unit_amount="0.25", flat_amount="100"),
            ]
        ),
        usage=pb.UsagePricing(meter="meters/m_1", filters=[pb.PropertyFilter(key="channel", value="sms")]),
        lookup_key="sms_monthly",
        nickname="SMS",
        supersedes="prices/price_0",
        metadata={"team": "growth"},
    )
    price = price_from_proto(msg, id="price_1")
    assert price == Price(
        id="price_1",
        product_id="prod_1",
        currency="USD",
        model=Graduated((Tier(Decimal(1000), Decimal("0.5")), Tier(None, Decimal("0.25"), Decimal(100)))),
        recurring=Recurring(Interval.MONTH),
        usage=price.usage,
        lookup_key="sms_monthly",
        nickname="SMS",
        supersedes="price_0",
        metadata={"team": "growth"},
    )
    assert price.usage is not None
    assert price.usage.meter_id == "m_1"
    assert price.usage.filters == (("channel", "sms"),)


def test_an_amount_coupon_keeps_its_minor_units_and_currency() -> None:
    msg = _coupon(
        amount_off=1500,
        currency="EUR",
        duration=pb.COUPON_DURATION_REPEATING,
        duration_in_months=3,
        applies_to_products=["products/prod_1"],
    )
    coupon = coupon_from_proto(msg, id="co_1")
    assert coupon == Coupon(
        id="co_1",
        code="WELCOME",
        name="Welcome",
        duration=CouponDuration.REPEATING,
        amount_off=1500,
        currency="EUR",
        duration_in_months=3,
        applies_to_products=("prod_1",),
    )


def test_a_customer_keeps_address_tax_ids_and_external_ids() -> None:
    msg = _customer(
        email="billing@acme.se",
        time_zone="Europe/Stockholm",
        billing_address=cpb.Address(line1="Drottninggatan 1", city="Stockholm", country="SE"),
        tax_ids=[cpb.TaxId(type="eu_vat", value="SE556677889901")],
        crm_account_id="0015g00000X",
    )
    customer = customer_from_proto(msg, id="cus_1")
    assert customer.billing_address == Address(line1="Drottninggatan 1", city="Stockholm", country="SE")
    assert customer.tax_ids == (TaxId("eu_vat", "SE556677889901"),)
    assert (customer.crm_account_id, customer.accounting_id) == ("0015g00000X", None)


def test_a_count_meter_needs_no_value_property() -> None:
    meter = meter_from_proto(_meter(aggregation=pb.AGGREGATION_COUNT, value_property=""), id="m_1")
    assert meter.aggregation is Aggregation.COUNT
    assert meter.value_property == ""


def test_update_masks_give_domain_attribute_names_and_values() -> None:
    assert product_changes(
        pb.Product(display_name="Seats", metadata={"a": "b"}), ["display_name", "metadata"]
    ) == {"name": "Seats", "metadata": {"a": "b"}}
    assert price_changes(pb.Price(lookup_key=""), ["lookup_key", "lookup_key"]) == {"lookup_key": None}
    changes = customer_changes(
        _customer(billing_address=cpb.Address(country="SE")), ["billing_address", "time_zone"]
    )
    assert changes == {"billing_address": Address(country="SE"), "time_zone": "UTC"}


def test_a_nested_mask_path_asks_for_the_whole_field() -> None:
    with pytest.raises(InvalidArgument, match="update 'billing_address' as a whole"):
        customer_changes(_customer(), ["billing_address.city"])


def test_billed_to_names_the_customer_or_the_currency() -> None:
    assert billed_to(rpb.QuoteRequest(customer="customers/cus_1")) == BilledTo("cus_1", "")
    assert billed_to(rpb.QuoteRequest(currency="JPY")) == BilledTo("", "JPY")


def test_an_inline_price_needs_no_product_and_is_called_inline() -> None:
    inline = pb.Price(currency="USD", flat=pb.FlatModel(amount="990"))
    request = _request(_quote(items=[rpb.QuoteItem(price=rpb.PriceSelector(inline=inline))]))
    price = request.items[0].price.inline
    assert price is not None
    assert (price.id, price.product_id) == (INLINE_PRICE_ID, "")


def test_a_usage_estimate_names_a_meter_by_event_or_by_resource_name() -> None:
    request = _request(
        _quote(
            usage=[
                rpb.UsageEstimate(meter="meters/m_1", quantity="10", transaction_count=2),
                rpb.UsageEstimate(
                    meter="message.sent",
                    quantity="0.5",
                    properties=[pb.PropertyFilter(key="channel", value="sms")],
                ),
            ]
        )
    )
    assert [(u.meter, u.quantity, u.properties, u.transaction_count) for u in request.usage] == [
        ("m_1", Decimal(10), (), 2),
        ("message.sent", Decimal("0.5"), (("channel", "sms"),), 0),
    ]


def test_resource_names_parse_to_ids_and_back() -> None:
    assert parse_name("prices/price_1", "prices", "name") == "price_1"
    assert format_name("prices", "price_1") == "prices/price_1"
    with pytest.raises(InvalidArgument) as raised:
        parse_name("", "prices", "name")
    assert raised.value.violations[0].field == "name"


# --- quotes out ------------------------------------------------------------------------------


def test_a_quote_carries_names_tiers_exact_amounts_and_discounts() -> None:
    seats = Price(
        "price_s",
        "prod_1",
        "USD",
        Graduated((Tier(Decimal(5), Decimal(100)), Tier(None, Decimal(50), Decimal(10)))),
        recurring=Recurring(Interval.MONTH),
        version=3,
    )
    catalog = Catalog(
        1,
        products={"prod_1": Product("prod_1", "Seats")},
        prices={"price_s": seats},
        coupons={"co_1": Coupon("co_1", "TEN", "Ten", CouponDuration.ONCE, percent_off=Decimal(10))},
    )
    inline = Price(INLINE_PRICE_ID, "", "USD", PerUnit(Decimal("0.333")))
    cart = QuoteRequest(
        "USD",
        items=(
            QuoteItem(PriceSelector(price_id="price_s"), Decimal(7)),
            QuoteItem(PriceSelector(inline=inline), Decimal(3)),
        ),
        coupon_codes=("TEN",),
    )
    as_of = datetime(2025, 1, 31, 12, 0, tzinfo=UTC)
    wire = quote_to_proto(price_quote(cart, catalog, as_of))
    seat, draft = wire.lines
    assert (seat.kind, seat.price, seat.product, seat.price_version) == (
        rpb.LINE_KIND_ITEM,
        "prices/price_s",
        "products/prod_1",
        3,
    )
    assert (seat.quantity, seat.unit_amount, seat.exact_amount, seat.amount) == ("7", "", "610", 610)
    assert [(t.tier, t.after, t.up_to, t.quantity, t.amount) for t in seat.tiers] == [
        (0, "0", "5", "5", "500"),
        (1, "5", "", "2", "110"),
    ]
    assert [(d.coupon, d.amount) for d in seat.discounts] == [("coupons/co_1", 61)]
    assert (seat.total, seat.recurring.interval) == (549, pb.INTERVAL_MONTH)
    assert (draft.price, draft.product, draft.price_version, draft.unit_amount) == ("", "", 0, "0.333")
    assert (draft.exact_amount, draft.amount, draft.HasField("recurring")) == ("0.999", 1, False)
    assert (wire.subtotal, wire.discount_total, wire.total) == (611, 61, 550)
    assert wire.quote_time.ToDatetime(tzinfo=UTC) == as_of
    assert wire.catalog_version == 1


def test_a_line_template_serves_one_catalog_version_and_changes_nothing_in_the_answer() -> None:
    price = Price("price_s", "prod_1", "USD", PerUnit(Decimal(100)), recurring=Recurring(Interval.MONTH))
    catalog = Catalog(4, products={"prod_1": Product("prod_1", "Seats")}, prices={"price_s": price})
    cart = QuoteRequest("USD", items=(QuoteItem(PriceSelector(price_id="price_s"), Decimal(2)),))
    quote = price_quote(cart, catalog, datetime(2025, 1, 31, tzinfo=UTC))
    templates = LineTemplates()
    assert quote_response(quote, templates) == quote_response(quote)
    first = templates.line(4, quote.lines[0])
    assert templates.line(4, quote.lines[0]) is first
    assert templates.line(5, quote.lines[0]) is not first, "a newer catalog version must not reuse it"


def test_a_plan_swaps_its_prices_through_the_generic_mask_helper() -> None:
    msg = pb.Plan(name="plans/pro", seat_price="prices/p_2", usage_prices=["prices/u_2"])
    changes = changes_from_mask(msg, ["seat_price", "usage_prices"], PLAN_MASK, "plan")
    assert changes == {"seat_price_id": "p_2", "usage_price_ids": ("u_2",)}
    with pytest.raises(InvalidArgument) as raised:
        changes_from_mask(pb.Plan(seat_price="p_2"), ["seat_price"], PLAN_MASK, "plan")
    assert [v.field for v in raised.value.violations] == ["plan.seat_price"]
