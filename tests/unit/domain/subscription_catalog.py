"""A small catalog for subscription tests: two seat plans, a usage price, add-ons and coupons."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

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
from billing.domain.pricing import Graduated, Percentage, PerUnit, Tier
from billing.domain.subscriptions import NewSubscription

MONTHLY = Recurring(Interval.MONTH)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _price(price_id: str, product: str, model: object, **kwargs: object) -> Price:
    return Price(price_id, product, "USD", model, MONTHLY, **kwargs)  # type: ignore[arg-type]


CATALOG = Catalog(
    version=1,
    products={
        "seats": Product("seats", "Seats", tax_code="saas"),
        "msgs": Product("msgs", "Messages"),
        "wfm": Product("wfm", "Workforce"),
        "pay": Product("pay", "Payments"),
    },
    meters={
        "msg": Meter("msg", "message", "Messages", Aggregation.SUM, "n", ("channel",)),
        "tx": Meter("tx", "payment", "Payments", Aggregation.SUM, "amount"),
    },
    prices={
        "basic": _price("basic", "seats", PerUnit(Decimal(1000))),
        "pro": _price("pro", "seats", PerUnit(Decimal(3000))),
        "email": _price(
            "email",
            "msgs",
            Graduated((Tier(Decimal(100), Decimal(0)), Tier(None, Decimal(1)))),
            usage=UsageBinding("msg", (("channel", "email"),)),
        ),
        "chat": _price(
            "chat", "msgs", PerUnit(Decimal(2)), usage=UsageBinding("msg", (("channel", "chat"),))
        ),
        "fee": _price("fee", "pay", Percentage(Decimal("1.5"), Decimal(30)), usage=UsageBinding("tx")),
        "wfm": _price("wfm", "wfm", PerUnit(Decimal(500))),
        "yearly": Price("yearly", "seats", "USD", PerUnit(Decimal(10000)), Recurring(Interval.YEAR)),
        "email_yearly": Price(
            "email_yearly",
            "msgs",
            "USD",
            Graduated((Tier(Decimal(100), Decimal(0)), Tier(None, Decimal(1)))),
            Recurring(Interval.YEAR),
            UsageBinding("msg", (("channel", "email"),)),
        ),
        "eur": Price("eur", "seats", "EUR", PerUnit(Decimal(900)), MONTHLY),
    },
    plans={
        "basic": Plan("basic", "Basic", "basic", ("email",)),
        "pro": Plan("pro", "Pro", "pro", ("chat",), ("wfm",)),
        "annual": Plan("annual", "Annual", "yearly"),
    },
    addons={"wfm": AddOn("wfm", "Workforce", "wfm")},
    coupons={
        "half": Coupon("half", "HALF", "50%", CouponDuration.FOREVER, percent_off=Decimal(50)),
        "once": Coupon("once", "ONCE", "10% once", CouponDuration.ONCE, percent_off=Decimal(10)),
        "flat": Coupon("flat", "FLAT", "7 off", CouponDuration.FOREVER, amount_off=700, currency="USD"),
        "three": Coupon(
            "three",
            "THREE",
            "3 months",
            CouponDuration.REPEATING,
            percent_off=Decimal(20),
            duration_in_months=3,
        ),
        "gone": Coupon(
            "gone", "GONE", "expired", CouponDuration.ONCE, percent_off=Decimal(5), redeem_by=utc(2020, 1, 1)
        ),
    },
)


def new(plan_id: str | None = "basic", seats: int = 1, **kwargs: object) -> NewSubscription:
    return NewSubscription(
        "sub",
        "cus",
        "USD",
        kwargs.pop("time_zone", "UTC"),
        plan_id,
        Decimal(seats),
        **kwargs,  # type: ignore[arg-type]
    )
