"""Pricing a cart from a snapshot: hand-checked lines, usage matching, coupons, errors."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from billing.domain.catalog import (
    AddOn,
    Aggregation,
    Catalog,
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
from billing.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from billing.domain.pricing import Graduated, PerUnit, Tier
from billing.domain.quote import (
    LineKind,
    PlanSelector,
    PriceSelector,
    QuoteItem,
    QuoteRequest,
    UsageEstimate,
    price_quote,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
MONTHLY = Recurring(Interval.MONTH)


def _catalog(*coupons: Coupon) -> Catalog:
    messages = Meter("mtr_msg", "message.sent", "Messages", Aggregation.SUM, "quantity", ("channel",))
    peak = Meter("mtr_peak", "agents.online", "Peak agents", Aggregation.MAX, "agents", ())
    prices = [
        Price("p_seat", "prod_seats", "USD", PerUnit(D(1900)), MONTHLY, lookup_key="seat"),
        Price(
            "p_wa",
            "prod_msgs",
            "USD",
            Graduated((Tier(D(1000), D("2.5")), Tier(None, D("1.8")))),
            MONTHLY,
            UsageBinding("mtr_msg", (("channel", "whatsapp"),)),
        ),
        Price("p_all", "prod_msgs", "USD", PerUnit(D("0.1")), MONTHLY, UsageBinding("mtr_msg")),
        Price("p_peak", "prod_msgs", "USD", PerUnit(D(500)), MONTHLY, UsageBinding("mtr_peak")),
        Price("p_addon", "prod_addon", "USD", PerUnit(D(2900)), MONTHLY),
        Price("p_eur", "prod_seats", "EUR", PerUnit(D(1700)), MONTHLY, lookup_key="seat-eur"),
        Price("p_old", "prod_seats", "USD", PerUnit(D(1500)), MONTHLY, lookup_key="old", active=False),
    ]
    return Catalog(
        version=7,
        products={
            p: Product(p, p.removeprefix("prod_").title()) for p in ("prod_seats", "prod_msgs", "prod_addon")
        },
        meters={m.id: m for m in (messages, peak)},
        prices={p.id: p for p in prices},
        plans={
            "plan_adv": Plan(
                "plan_adv", "Advanced", "p_seat", ("p_wa",), ("addon_inc",), lookup_key="advanced"
            )
        },
        addons={
            "addon_inc": AddOn("addon_inc", "Included analytics", "p_addon"),
            "addon_wfm": AddOn("addon_wfm", "Workforce", "p_addon"),
        },
        coupons={c.id: c for c in coupons},
    )


def _coupon(code: str, **fields: object) -> Coupon:
    return Coupon(f"coupon_{code}", code, code, CouponDuration.ONCE, **fields)  # type: ignore[arg-type]


def test_a_plan_quote_has_seat_usage_and_included_lines() -> None:
    request = QuoteRequest(
        currency="USD",
        plan=PlanSelector(lookup_key="advanced"),
        seats=D(3),
        usage=(UsageEstimate("message.sent", D(1500), (("channel", "whatsapp"),)),),
    )
    quote = price_quote(request, _catalog(), NOW)
    assert [(line.kind, line.amount, line.included) for line in quote.lines] == [
        (LineKind.SEAT, 5700, False),  # 3 x 1900
        (LineKind.USAGE, 3400, False),  # 1000 x 2.5 + 500 x 1.8 = 2500 + 900
        (LineKind.ADD_ON, 0, True),  # included in the plan
    ]
    assert (quote.subtotal, quote.total, quote.catalog_version) == (9100, 9100, 7)


def test_an_estimate_counts_towards_every_price_whose_filters_it_satisfies() -> None:
    request = QuoteRequest(
        currency="USD",
        items=(QuoteItem(PriceSelector("p_wa")), QuoteItem(PriceSelector("p_all"))),
        usage=(
            UsageEstimate("message.sent", D(200), (("channel", "whatsapp"),)),
            UsageEstimate("message.sent", D(300), (("channel", "email"),)),
        ),
    )
    quote = price_quote(request, _catalog(), NOW)
    # p_wa sees only WhatsApp: 200 x 2.5 = 500. p_all (no filter) sees both: 500 x 0.1 = 50.
    assert [line.amount for line in quote.lines] == [500, 50]


def test_estimates_of_a_max_meter_combine_by_maximum() -> None:
    request = QuoteRequest(
        currency="USD",
        items=(QuoteItem(PriceSelector("p_peak")),),
        usage=(UsageEstimate("agents.online", D(4)), UsageEstimate("mtr_peak", D(6))),
    )
    assert price_quote(request, _catalog(), NOW).lines[0].amount == 3000  # max(4, 6) x 500


def test_a_percentage_coupon_limited_to_a_product_discounts_only_its_lines() -> None:
    coupon = _coupon("SEATS15", percent_off=D(15), applies_to_products=("prod_seats",))
    request = QuoteRequest(
        currency="USD",
        items=(QuoteItem(PriceSelector(lookup_key="seat"), D(3)), QuoteItem(PriceSelector("p_addon"))),
        coupon_codes=("SEATS15",),
    )
    quote = price_quote(request, _catalog(coupon), NOW)
    # 15 % of 5700 = 855; the add-on line is not a seat line.
    assert [(line.amount, line.discount, line.total) for line in quote.lines] == [
        (5700, 855, 4845),
        (2900, 0, 2900),
    ]
    assert (quote.discount_total, quote.total) == (855, 7745)


def test_an_amount_coupon_is_split_by_largest_remainder_and_conserved() -> None:
    coupon = _coupon("TEN", amount_off=1000, currency="USD")
    request = QuoteRequest(
        currency="USD",
        items=(QuoteItem(PriceSelector(lookup_key="seat")), QuoteItem(PriceSelector("p_addon"))),
        coupon_codes=("TEN",),
    )
    quote = price_quote(request, _catalog(coupon), NOW)
    # 1000 x 1900/4800 = 395.83 and 1000 x 2900/4800 = 604.17: floors 395 + 604 = 999, the
    # leftover minor unit goes to the larger remainder (0.83): 396 + 604 = 1000.
    assert [line.discount for line in quote.lines] == [396, 604]
    assert quote.discount_total == 1000


def test_an_amount_coupon_larger_than_the_cart_never_makes_a_line_negative() -> None:
    coupon = _coupon("BIG", amount_off=10_000, currency="USD")
    request = QuoteRequest(
        currency="USD", items=(QuoteItem(PriceSelector("p_addon")),), coupon_codes=("BIG",)
    )
    quote = price_quote(request, _catalog(coupon), NOW)
    assert (quote.lines[0].total, quote.total) == (0, 0)


def test_coupons_apply_in_order_each_to_what_the_previous_left() -> None:
    half = _coupon("HALF", percent_off=D(50))
    five = _coupon("FIVE", amount_off=500, currency="USD")
    request = QuoteRequest(
        currency="USD", items=(QuoteItem(PriceSelector("p_addon")),), coupon_codes=("HALF", "FIVE")
    )
    quote = price_quote(request, _catalog(half, five), NOW)
    assert quote.total == 950  # 2900 - 1450 = 1450, then - 500


@pytest.mark.parametrize(
    ("coupon", "message"),
    [
        (_coupon("OLD", percent_off=D(10), redeem_by=datetime(2026, 1, 1, tzinfo=UTC)), "expired"),
        (_coupon("USED", percent_off=D(10), max_redemptions=5, times_redeemed=5), "maximum"),
        (_coupon("EURO", amount_off=100, currency="EUR"), "EUR"),
        (_coupon("GONE", percent_off=D(10), active=False), "archived"),
    ],
)
def test_a_coupon_that_cannot_be_redeemed_is_a_failed_precondition(coupon: Coupon, message: str) -> None:
    request = QuoteRequest(
        currency="USD", items=(QuoteItem(PriceSelector("p_addon")),), coupon_codes=(coupon.code,)
    )
    with pytest.raises(FailedPrecondition, match=message):
        price_quote(request, _catalog(coupon), NOW)


def test_an_estimate_matching_no_price_in_the_cart_is_invalid() -> None:
    request = QuoteRequest(
        currency="USD",
        plan=PlanSelector("plan_adv"),
        usage=(UsageEstimate("message.sent", D(5), (("channel", "sms"),)),),
    )
    with pytest.raises(InvalidArgument) as caught:
        price_quote(request, _catalog(), NOW)
    assert [v.field for v in caught.value.violations] == ["usage[0]"]


def test_an_estimate_with_a_property_the_meter_does_not_have_is_invalid() -> None:
    request = QuoteRequest(
        currency="USD",
        items=(QuoteItem(PriceSelector("p_all")),),
        usage=(UsageEstimate("message.sent", D(5), (("chanel", "sms"),)),),
    )
    with pytest.raises(InvalidArgument) as caught:
        price_quote(request, _catalog(), NOW)
    assert [v.field for v in caught.value.violations] == ["usage[0].properties"]


def test_a_price_in_another_currency_is_invalid_at_its_item() -> None:
    request = QuoteRequest(
        currency="USD", items=(QuoteItem(PriceSelector("p_addon")), QuoteItem(PriceSelector("p_eur")))
    )
    with pytest.raises(InvalidArgument) as caught:
        price_quote(request, _catalog(), NOW)
    assert [v.field for v in caught.value.violations] == ["items[1].price"]


@pytest.mark.parametrize(
    "request_",
    [
        QuoteRequest(currency="USD", plan=PlanSelector(lookup_key="nope")),
        QuoteRequest(currency="USD", items=(QuoteItem(PriceSelector("p_missing")),)),
        QuoteRequest(currency="USD", add_on_ids=("addon_missing",)),
        QuoteRequest(currency="USD", coupon_codes=("NOPE",)),
        QuoteRequest(
            currency="USD", items=(QuoteItem(PriceSelector("p_all")),), usage=(UsageEstimate("nope", D(1)),)
        ),
    ],
)
def test_unknown_references_are_not_found(request_: QuoteRequest) -> None:
    with pytest.raises(NotFound):
        price_quote(request_, _catalog(), NOW)


def test_an_archived_price_cannot_be_sold() -> None:
    request = QuoteRequest(currency="USD", items=(QuoteItem(PriceSelector(lookup_key="old")),))
    with pytest.raises(FailedPrecondition, match="archived"):
        price_quote(request, _catalog(), NOW)


def test_an_inline_price_is_quoted_and_marked_inline() -> None:
    draft = Price("inline", "", "USD", PerUnit(D("33.335")))
    request = QuoteRequest(currency="USD", items=(QuoteItem(PriceSelector(inline=draft), D(1)),))
    line = price_quote(request, _catalog(), NOW).lines[0]
    assert (line.inline, line.charge.amount, line.amount) == (
        True,
        D("33.335"),
        33,
    )  # 33.335 rounds half-up to 33


def test_a_plan_changed_in_a_newer_snapshot_is_priced_from_that_snapshot() -> None:
    """A plan's lines are derived once per snapshot; the next snapshot derives its own."""
    before = _catalog()
    request = QuoteRequest("USD", PlanSelector(lookup_key="advanced"), seats=D(2))
    assert [line.price.id for line in price_quote(request, before, NOW).lines] == [
        "p_seat",
        "p_wa",
        "p_addon",
    ]
    plan = before.plans["plan_adv"]
    after = Catalog(
        version=before.version + 1,
        products=before.products,
        meters=before.meters,
        prices=before.prices,
        plans={plan.id: Plan(plan.id, plan.name, "p_addon", ("p_all",), (), lookup_key="advanced")},
        addons=before.addons,
    )
    quote = price_quote(request, after, NOW)
    assert quote.catalog_version == 8
    assert [(line.price.id, line.amount) for line in quote.lines] == [("p_addon", 5800), ("p_all", 0)]
    # The older snapshot still prices from its own plan (a quote in flight during a swap).
    assert [line.price.id for line in price_quote(request, before, NOW).lines] == [
        "p_seat",
        "p_wa",
        "p_addon",
    ]
