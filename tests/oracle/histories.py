"""Random subscription histories for the differential test, from a seeded ``random.Random``.

History ``n`` of a run is ``random_history(random.Random(n))``: any one can be rebuilt from its
number alone, which is how a disagreement is reproduced and then shrunk by hand.

Only what the subscription API can express is generated: the seat is a plan's seat price (a plan
change keeps the ``seat`` item and may swap the plan's usage prices), add-ons have quantity 1 and
are added or removed, every price bills at the subscription's interval, a meter has one
aggregation, and only seat changes are scheduled for the period end.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from tests.oracle.oracle import Change, Coupon, Cycle, Event, History, Item, Op, Price, Tier

ZONES = (
    "UTC",
    "America/New_York",
    "Europe/London",
    "Europe/Berlin",
    "America/Santiago",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "Pacific/Kiritimati",  # UTC+14
    "Etc/GMT+12",  # UTC-12
)
# (country, currency); amounts are minor units whatever the exponent.
MARKETS = (("US", "USD"), ("DE", "EUR"), ("GB", "GBP"), ("JP", "JPY"), ("KW", "KWD"), ("SE", "SEK"))
TAX_CODES = ("", "saas", "ebook")
TAX_RATES = {
    ("DE", ""): ("DE-standard", Fraction(19)),
    ("DE", "ebook"): ("DE-reduced", Fraction(7)),
    ("GB", ""): ("GB-standard", Fraction(20)),
    ("JP", ""): ("JP-standard", Fraction(10)),
    ("SE", ""): ("SE-standard", Fraction(25)),
    ("SE", "ebook"): ("SE-reduced", Fraction(6)),
    ("US", "saas"): ("US-NY", Fraction("8.875")),
}
PERCENTS = (Fraction(10), Fraction(25), Fraction("12.5"), Fraction("33.333"), Fraction(50), Fraction(100))
FIRST = datetime(2023, 1, 1, tzinfo=UTC)
SPAN_SECONDS = 3 * 365 * 86_400


def _money(rng: random.Random, high: int) -> Fraction:
    """Whole minor units mostly, sometimes fractions of one (unit prices may be "0.125")."""
    if rng.random() < 0.7:
        return Fraction(rng.randint(0, high))
    return Fraction(rng.randint(0, high * 1000), 1000)


def _tiers(rng: random.Random, high: int) -> tuple[Tier, ...]:
    bounds = sorted(rng.sample(range(1, 40), rng.randint(1, 3)))
    tiers = [
        Tier(Fraction(b), _money(rng, high), _money(rng, high) if rng.random() < 0.3 else Fraction(0))
        for b in bounds
    ]
    return (*tiers, Tier(None, _money(rng, high)))


def _price(rng: random.Random, product: str, meter: str | None, seat: bool) -> Price:
    models = ["per_unit", "graduated", "volume", "package"] + (["flat"] if seat else [])
    model = rng.choice(models)
    high = 5000 if seat else 300
    price = Price(product, model, meter=meter)
    if model in ("per_unit", "flat"):
        return replace(price, amount=_money(rng, high))
    if model == "package":
        return replace(
            price,
            amount=_money(rng, high * 3),
            package_size=Fraction(rng.choice((1, 5, 10, 100))),
            package_round_up=rng.random() < 0.7,
            free_units=Fraction(rng.choice((0, 0, 1, 10))),
        )
    return replace(price, tiers=_tiers(rng, high))


METERS = {"calls": "sum", "conversations": "count", "peak": "max"}


def _usage_price(rng: random.Random, product: str) -> Price:
    meter = rng.choice(tuple(METERS))
    price = _price(rng, product, meter, seat=False)
    filters: tuple[tuple[str, str], ...] = ()
    if meter == "conversations" and rng.random() < 0.5:
        filters = (("outcome", "resolved"),)
    return replace(price, aggregation=METERS[meter], filters=filters)


def _other_price(rng: random.Random, old: Price, make: Callable[[], Price]) -> Price:
    """A new price unlike ``old`` (the same price again is no change at all)."""
    while (new := make()) == old:
        pass
    return new


def _coupon(rng: random.Random, code: str, products: list[str]) -> Coupon:
    duration = rng.choice(("once", "repeating", "forever"))
    limited = frozenset(rng.sample(products, 1)) if rng.random() < 0.25 else frozenset()
    months = rng.randint(1, 4) if duration == "repeating" else 0
    if rng.random() < 0.6:
        return Coupon(code, duration, percent_off=rng.choice(PERCENTS), months=months, products=limited)
    return Coupon(code, duration, amount_off=rng.randint(1, 5000), months=months, products=limited)


def _instant(rng: random.Random, low: datetime, high: datetime) -> datetime:
    return low + timedelta(seconds=rng.randrange(max(1, int((high - low).total_seconds()))))


def _events(rng: random.Random, start: datetime, horizon: datetime) -> tuple[Event, ...]:
    events = []
    for _ in range(rng.randint(0, 25)):
        meter = rng.choice(tuple(METERS))
        value = Fraction(rng.randint(0, 50)) if rng.random() < 0.8 else Fraction(rng.randint(0, 50_000), 1000)
        properties = (("outcome", rng.choice(("resolved", "open"))),) if meter == "conversations" else ()
        at = _instant(rng, start, horizon)
        # Some arrive late, after the close of their period and up to 50 days after they happened.
        received = at + timedelta(seconds=rng.randint(0, 50 * 86_400)) if rng.random() < 0.15 else None
        events.append(Event(meter, at, value, properties, received))
    return tuple(events)


def random_history(rng: random.Random) -> History:
    zone = rng.choice(ZONES)
    country, currency = rng.choice(MARKETS)
    interval = rng.choices(("day", "week", "month", "year"), weights=(2, 2, 5, 1))[0]
    calendar = rng.random() < 0.25
    count = 1 if calendar or rng.random() < 0.75 else rng.randint(2, 3)
    start = _instant(rng, FIRST, FIRST + timedelta(seconds=SPAN_SECONDS))
    if rng.random() < 0.2:  # month ends and leap days, where anniversaries clamp
        start = start.replace(month=rng.choice((1, 2, 3, 5, 8, 12)), day=28) + timedelta(
            days=rng.randint(0, 3)
        )
    trial_end = None
    created_at = None
    if rng.random() < 0.2:
        trial_end = start + timedelta(seconds=rng.randint(3600, 30 * 86_400))
    billing_start = trial_end or start
    if rng.random() < 0.1:  # an import: billing began before the subscription was created
        created_at = billing_start + timedelta(seconds=rng.randint(3600, 40 * 86_400))
    cycle = Cycle(
        History(zone, country, currency, interval, count, start, start, (), calendar=calendar),
        billing_start,
    )
    boundaries = [billing_start]
    for _ in range(rng.randint(2, 7)):
        boundaries.append(cycle.next_boundary(boundaries[-1]))
    horizon = boundaries[-1]

    products = ["seat", "addon_a", "addon_b", "usage_a", "usage_b"]
    items = [Item("seat", _price(rng, "seat", None, seat=True), Fraction(rng.randint(1, 20)))]
    for key in ("addon_a", "addon_b"):
        if rng.random() < 0.4:
            items.append(Item(key, _price(rng, key, None, seat=True)))
    for key in ("usage_a", "usage_b"):
        if rng.random() < 0.5:
            items.append(Item(key, _usage_price(rng, key), Fraction(0)))
    coupons = tuple(_coupon(rng, f"C{n}", products) for n in range(rng.choice((0, 0, 1, 1, 2))))

    cancel_trial = trial_end is not None and rng.random() < 0.3
    has_payment_method = rng.random() < 0.7
    live = {item.key: item.price for item in items}
    changes: list[Change] = []
    times = sorted(_instant(rng, start, horizon) for _ in range(rng.randint(0, 6)))
    scheduled_until = FIRST
    trial_cancels = trial_end is not None and cancel_trial and not has_payment_method
    for n, at in enumerate(times):
        if at in boundaries or (created_at is not None and at <= created_at):
            continue
        if trial_cancels and trial_end is not None and at >= trial_end:
            break  # canceled at the trial's end: nothing can change it any more
        change = _change(rng, at, live, products, n, seat_free=at >= scheduled_until)
        if change is None:
            continue
        if change.behaviour == "period_end":  # no other seat change until it applies
            scheduled_until = min([b for b in boundaries if b > at], default=horizon)
        changes.append(change)
        if change.kind.startswith("cancel"):
            break
    return History(
        zone=zone,
        country=country,
        currency=currency,
        interval=interval,
        interval_count=count,
        start=start,
        horizon=horizon,
        items=tuple(items),
        calendar=calendar,
        per_day=rng.random() < 0.3,
        trial_end=trial_end,
        cancel_trial_without_payment_method=cancel_trial,
        has_payment_method=has_payment_method,
        created_at=created_at,
        coupons=coupons,
        changes=tuple(changes),
        events=_events(rng, start, horizon),
        tax_codes={product: rng.choice(TAX_CODES) for product in products},
        tax_rates=TAX_RATES,
        credit_balance=rng.choice((0, 0, 0, rng.randint(1, 20_000))),
    )


def _change(
    rng: random.Random, at: datetime, live: dict[str, Price], products: list[str], n: int, seat_free: bool
) -> Change | None:
    behaviour = rng.choices(
        ("create_prorations", "always_invoice", "none", "period_end"), weights=(5, 2, 1, 1)
    )[0]
    roll = rng.random()
    if roll < 0.05:
        return Change(at, "cancel_now", behaviour=rng.choice(("create_prorations", "always_invoice", "none")))
    if roll < 0.10:
        return Change(at, "cancel_at_period_end")
    if roll < 0.20:
        return Change(at, "coupon", coupon=_coupon(rng, f"R{n}", products))
    if roll < 0.70 and not seat_free:  # the scheduled change names the whole plan and seats
        return None
    if roll < 0.55:
        ops: tuple[Op, ...] = (Op("set_quantity", "seat", Fraction(rng.randint(1, 25))),)
    elif roll < 0.70:  # a plan change: a new seat price, and perhaps other usage prices
        price = _other_price(rng, live["seat"], lambda: _price(rng, "seat", None, seat=True))
        live["seat"] = price
        ops = (Op("set_price", "seat", price=price),)
        if rng.random() < 0.4:
            ops += (_toggle(rng, rng.choice(("usage_a", "usage_b")), live),)
    else:  # usage prices belong to the plan: not while a plan change waits for the period end
        keys = ("addon_a", "addon_b", "usage_a", "usage_b") if seat_free else ("addon_a", "addon_b")
        ops = (_toggle(rng, rng.choice(keys), live),)
        if behaviour == "period_end":  # only seat changes are scheduled
            behaviour = "create_prorations"
    if behaviour == "period_end" and len(ops) > 1:
        behaviour = "none"
    return Change(at, "update", ops, behaviour=behaviour)


def _toggle(rng: random.Random, key: str, live: dict[str, Price]) -> Op:
    """Add ``key`` when absent; otherwise remove it, or (a usage price) change its price."""
    usage = key.startswith("usage")

    def make() -> Price:
        return _usage_price(rng, key) if usage else _price(rng, key, None, seat=True)

    if key not in live:
        live[key] = make()
        return Op("add", key, Fraction(0) if usage else Fraction(1), live[key])
    if not usage or rng.random() < 0.4:
        del live[key]
        return Op("remove", key)
    live[key] = _other_price(rng, live[key], make)
    return Op("set_price", key, price=live[key])
