"""The production history driver against the independent oracle, on seeded random histories.

``billing.domain.simulation.simulate`` (the production code path, in memory) and
``tests.oracle.oracle.invoices`` (the billing rules written again with Fraction) must issue the
same invoices: same instants, same lines, same amounts, discounts and taxes, same totals, to the
minor unit. History ``n`` is ``random_history(random.Random(n))``.

``ORACLE_HISTORIES`` sets how many histories run (default 10,000, in twenty tests of 500);
``ORACLE_FIRST`` the first number. ``python -m tests.oracle.test_differential 0 10000`` prints
every disagreement instead of stopping at the first; ``python -m tests.oracle.shrink N`` shrinks
history ``N`` to a small one that still disagrees.

Only ``translate`` knows both input formats: it reads the driver's input dataclasses and the
catalog entities, never the implementation.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, localcontext
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest

from billing.domain import catalog as cat
from billing.domain import pricing
from billing.domain.invoices import BillingCustomer, InvoiceDraft, InvoiceLineKind
from billing.domain.periods import AnchorMode
from billing.domain.proration import ProrationPolicy
from billing.domain.simulation import Action, CancelAt, ChangeAt, ScheduleAt, UsageEvent, simulate
from billing.domain.simulation import History as DriverHistory
from billing.domain.subscriptions import (
    NewSubscription,
    ProrationBehavior,
    SubscriptionChange,
    TrialEndBehavior,
)
from billing.domain.tax import TaxRate, TaxTable
from tests.oracle import oracle
from tests.oracle.histories import METERS, random_history

DEFAULT_HISTORIES = 10_000

# -- translation: the oracle's plain history -> the driver's input ---------------------------


def dec(value: Fraction) -> Decimal:
    """An exact Decimal of a Fraction whose denominator divides a power of ten."""
    with localcontext() as exact:
        exact.prec = 60
        result = Decimal(value.numerator) / Decimal(value.denominator)
    assert Fraction(result) == value, value
    return result


def _model(price: oracle.Price) -> pricing.PriceModel:
    if price.model == "flat":
        return pricing.Flat(dec(price.amount))
    if price.model == "per_unit":
        return pricing.PerUnit(dec(price.amount))
    if price.model == "package":
        rounding = pricing.PackageRounding.UP if price.package_round_up else pricing.PackageRounding.DOWN
        return pricing.Package(dec(price.amount), dec(price.package_size), rounding, dec(price.free_units))
    tiers = tuple(
        pricing.Tier(None if t.up_to is None else dec(t.up_to), dec(t.unit), dec(t.flat)) for t in price.tiers
    )
    return pricing.Graduated(tiers) if price.model == "graduated" else pricing.Volume(tiers)


class _Catalog:
    """Builds the catalog entities a history needs.

    The production orders lines by item key (``add_on:<id>``, ``usage:<price id>``) and the oracle
    by its own key, then by time: an add-on or usage price gets a new id, ``<oracle key>_<n>``
    with ``n`` growing in time, each time the history sets one, so both orders agree.
    """

    def __init__(self, history: oracle.History) -> None:
        self.h = history
        self.recurring = cat.Recurring(cat.Interval(history.interval), history.interval_count)
        self.seat_prices: dict[oracle.Price, str] = {}
        self.prices: dict[str, cat.Price] = {}
        self.plans: dict[tuple[str, tuple[str, ...]], cat.Plan] = {}
        self.addons: dict[str, cat.AddOn] = {}
        self.coupons: dict[str, cat.Coupon] = {}

    def _new_price(self, price: oracle.Price, name: str) -> str:
        usage = None if price.meter is None else cat.UsageBinding(price.meter, price.filters)
        price_id = f"{name}_{len(self.prices):04d}"
        model = _model(price)
        self.prices[price_id] = cat.Price(
            price_id, price.product, self.h.currency, model, self.recurring, usage
        )
        return price_id

    def seat(self, price: oracle.Price) -> str:
        if price not in self.seat_prices:
            self.seat_prices[price] = self._new_price(price, "seat")
        return self.seat_prices[price]

    def usage(self, key: str, price: oracle.Price) -> str:
        return self._new_price(price, key)

    def plan(self, seat: oracle.Price, usage_price_ids: Iterable[str]) -> str:
        key = (self.seat(seat), tuple(usage_price_ids))
        if key not in self.plans:
            plan_id = f"plan_{len(self.plans)}"
            self.plans[key] = cat.Plan(plan_id, "plan", key[0], key[1], currency=self.h.currency)
        return self.plans[key].id

    def addon(self, key: str, price: oracle.Price) -> str:
        addon_id = f"{key}_{len(self.addons):04d}"
        self.addons[addon_id] = cat.AddOn(addon_id, key, self._new_price(price, key))
        return addon_id

    def coupon(self, coupon: oracle.Coupon) -> str:
        duration = cat.CouponDuration(coupon.duration)
        self.coupons[coupon.code] = cat.Coupon(
            id=f"coupon_{coupon.code}",
            code=coupon.code,
            name=coupon.code,
            duration=duration,
            percent_off=None if coupon.percent_off is None else dec(coupon.percent_off),
            amount_off=coupon.amount_off,
            currency=self.h.currency if coupon.amount_off is not None else None,
            duration_in_months=coupon.months if duration is cat.CouponDuration.REPEATING else None,
            applies_to_products=tuple(sorted(coupon.products)),
        )
        return coupon.code

    def build(self) -> cat.Catalog:
        products = {p: cat.Product(p, p, tax_code=self.h.tax_codes.get(p, "")) for p in self.h.tax_codes}
        for price in self.prices.values():
            products.setdefault(price.product_id, cat.Product(price.product_id, price.product_id))
        meters = {
            m: cat.Meter(
                m,
                m,
                m,
                cat.Aggregation(aggregation),
                "" if aggregation == "count" else "value",
                ("outcome",) if m == "conversations" else (),
            )
            for m, aggregation in METERS.items()
        }
        return cat.Catalog(
            version=1,
            products=products,
            meters=meters,
            prices=self.prices,
            plans={p.id: p for p in self.plans.values()},
            addons=self.addons,
            coupons={c.id: c for c in self.coupons.values()},
        )


@dataclass
class _State:
    """The subscription as the translation tracks it: the plan's parts, seats, add-ons."""

    seat: oracle.Price
    seats: Fraction
    usage: dict[str, str]  # item key -> price id
    addons: dict[str, str]  # item key -> add-on id


def _update(
    state: _State, ops: Iterable[oracle.Op], catalog: _Catalog, behavior: ProrationBehavior
) -> SubscriptionChange:
    plan_changed, seats, added, removed = False, None, [], []
    for op in ops:
        if op.item == "seat":
            if op.kind == "set_quantity":
                state.seats = seats = op.quantity
            else:
                assert op.price is not None
                state.seat, plan_changed = op.price, True
        elif op.item.startswith("usage"):
            plan_changed = True
            if op.kind == "remove":
                del state.usage[op.item]
            else:
                assert op.price is not None
                state.usage[op.item] = catalog.usage(op.item, op.price)
        elif op.kind == "add":
            assert op.price is not None
            state.addons[op.item] = catalog.addon(op.item, op.price)
            added.append(state.addons[op.item])
        else:
            assert op.kind == "remove"
            removed.append(state.addons.pop(op.item))
    plan = catalog.plan(state.seat, sorted(state.usage.values())) if plan_changed else None
    return SubscriptionChange(
        plan_id=plan,
        seats=None if seats is None else dec(seats),
        add_ons_added=tuple(added),
        add_ons_removed=tuple(removed),
        proration_behavior=behavior,
    )


def translate(history: oracle.History) -> DriverHistory:
    catalog = _Catalog(history)
    items = {item.key: item for item in history.items}
    state = _State(
        seat=items["seat"].price,
        seats=items["seat"].quantity,
        usage={k: catalog.usage(k, i.price) for k, i in items.items() if i.price.usage},
        addons={k: catalog.addon(k, i.price) for k, i in items.items() if k.startswith("addon")},
    )
    new = NewSubscription(
        id="sub_1",
        customer_id="cus_1",
        currency=history.currency,
        time_zone=history.zone,
        plan_id=catalog.plan(state.seat, sorted(state.usage.values())),
        seats=dec(state.seats),
        add_on_ids=tuple(state.addons.values()),
        coupon_codes=tuple(catalog.coupon(c) for c in history.coupons),
        start=history.start,
        trial_end=history.trial_end,
        trial_end_behavior=TrialEndBehavior.CANCEL
        if history.cancel_trial_without_payment_method
        else TrialEndBehavior.CREATE_INVOICE,
        anchor_mode=AnchorMode.CALENDAR if history.calendar else AnchorMode.ANNIVERSARY,
        proration_policy=ProrationPolicy.PER_DAY if history.per_day else ProrationPolicy.PER_SECOND,
    )
    actions: list[Action] = []
    for change in sorted(history.changes, key=lambda c: c.at):
        if change.kind == "coupon":
            assert change.coupon is not None
            actions.append(
                ChangeAt(change.at, SubscriptionChange(coupon_codes=(catalog.coupon(change.coupon),)))
            )
        elif change.kind == "cancel_now":
            actions.append(
                CancelAt(change.at, at_period_end=False, behavior=ProrationBehavior(change.behaviour))
            )
        elif change.kind == "cancel_at_period_end":
            actions.append(CancelAt(change.at, at_period_end=True))
        elif change.behaviour == "period_end":
            actions.append(ScheduleAt(change.at, _update(state, change.ops, catalog, ProrationBehavior.NONE)))
        else:
            behavior = ProrationBehavior(change.behaviour)
            actions.append(ChangeAt(change.at, _update(state, change.ops, catalog, behavior)))
    rates: dict[tuple[str, str], TaxRate] = {}
    defaults: dict[str, TaxRate] = {}
    for (country, code), (rate_id, percent) in history.tax_rates.items():
        rate = TaxRate(rate_id, dec(percent))
        if code:
            rates[(country, code)] = rate
        else:
            defaults[country] = rate
    usage = tuple(
        UsageEvent(e.meter, e.at, dec(e.value), e.properties, e.received_at)
        for e in sorted(history.events, key=lambda e: e.at)
    )
    return DriverHistory(
        catalog=catalog.build(),
        subscription=new,
        created_at=history.created_at or history.start,
        customer=BillingCustomer(history.country, history.has_payment_method),
        until=history.horizon,
        actions=tuple(actions),
        usage=usage,
        tax_table=TaxTable(rates, defaults),
        credit_balance=history.credit_balance,
    )


# -- comparison ------------------------------------------------------------------------------

_KINDS = {
    InvoiceLineKind.USAGE: "usage",
    InvoiceLineKind.FEE: "fee",
    InvoiceLineKind.PRORATION_CREDIT: "credit",
    InvoiceLineKind.PRORATION_DEBIT: "debit",
    InvoiceLineKind.USAGE_ADJUSTMENT: "adjustment",
}
LineKey = tuple[str, str, datetime, datetime, Fraction, int, int, int]
InvoiceKey = tuple[datetime, tuple[LineKey, ...], tuple[int, int, int, int, int, int, int]]


def _oracle_invoice(invoice: oracle.Invoice) -> InvoiceKey:
    lines = tuple(
        (line.kind, line.product, line.start, line.end, line.quantity, line.amount, line.discount, line.tax)
        for line in invoice.lines
    )
    totals = (
        invoice.subtotal,
        invoice.discount,
        invoice.tax,
        invoice.total,
        invoice.credit_applied,
        invoice.amount_due,
        invoice.balance_after,
    )
    return invoice.at, lines, totals


def _driver_invoice(draft: InvoiceDraft) -> InvoiceKey:
    lines = tuple(
        (
            _KINDS[line.kind],
            line.product_id,
            line.period.start,
            line.period.end,
            Fraction(line.quantity),
            line.amount,
            line.discount,
            line.tax,
        )
        for line in draft.lines
    )
    totals = (
        draft.subtotal,
        draft.discount,
        draft.tax,
        draft.total,
        draft.credit_applied,
        draft.amount_due,
        draft.credit_balance_after,
    )
    return draft.issued_at, lines, totals


def disagreement(n: int) -> str | None:
    """None when history ``n`` gives the same invoices both ways, else both sides, printed."""
    history = random_history(random.Random(n))
    expected = [_oracle_invoice(i) for i in oracle.invoices(history)]
    actual = [_driver_invoice(d) for d in simulate(translate(history)).invoices]
    if expected == actual:
        return None
    return f"history {n}:\n{history}\noracle:\n{_show(expected)}\ndriver:\n{_show(actual)}"


def _show(invoices: list[InvoiceKey]) -> str:
    out = []
    for at, lines, totals in invoices:
        out.append(f"  {at.isoformat()} totals={totals}")
        out.extend(f"    {line[0]} {line[1]} [{line[2]}, {line[3]}) q={line[4]} {line[5:]}" for line in lines)
    return "\n".join(out)


CHUNKS = 20


def _chunk(index: int) -> range:
    """The histories of chunk ``index``: the run is split so that no one test nears the timeout."""
    first = int(os.environ.get("ORACLE_FIRST", "0"))
    count = int(os.environ.get("ORACLE_HISTORIES", str(DEFAULT_HISTORIES)))
    size = -(-count // CHUNKS)
    return range(first + index * size, first + min(count, (index + 1) * size))


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_driver_agrees_with_the_oracle_to_the_minor_unit(chunk: int) -> None:
    for n in _chunk(chunk):
        found = disagreement(n)
        if found is not None:
            pytest.fail(found, pytrace=False)


# -- regressions: each disagreement found, shrunk to a history small enough to check by hand ---

_UTC = ZoneInfo("UTC")
_SEAT = oracle.Price("seat", "per_unit", amount=Fraction(1000))
_CALLS = oracle.Price("usage_a", "per_unit", amount=Fraction(2), meter="calls", aggregation="sum")


def _march(**overrides: object) -> oracle.History:
    base: dict[str, object] = {
        "zone": "UTC",
        "country": "US",
        "currency": "USD",
        "interval": "month",
        "interval_count": 1,
        "start": datetime(2024, 3, 1, tzinfo=_UTC),
        "horizon": datetime(2024, 4, 1, tzinfo=_UTC),
        "items": (oracle.Item("seat", _SEAT, Fraction(3)),),
    }
    base.update(overrides)
    return oracle.History(**base)  # type: ignore[arg-type]


def _both(history: oracle.History) -> list[InvoiceKey]:
    """The invoices of ``history``, after checking that the oracle and the driver agree on them."""
    expected = [_oracle_invoice(i) for i in oracle.invoices(history)]
    assert [_driver_invoice(d) for d in simulate(translate(history)).invoices] == expected
    return expected


def _amounts(invoice: InvoiceKey) -> list[tuple[str, Fraction, int]]:
    return [(line[0], line[4], line[5]) for line in invoice[1]]


def test_cancel_now_with_always_invoice_issues_one_final_invoice() -> None:
    # Histories 0, 40, 44, 64, 68, 139, 141, 143: the oracle issued the credits on an invoice of
    # their own and then the final invoice, both at the cancellation; the driver issues one. The
    # rules did not say; one invoice is the reading kept. 10 calls at 2 = 20 before the cancel on
    # March 11; credit -round(3000 * 21/31) = -2032.
    history = _march(
        items=(oracle.Item("seat", _SEAT, Fraction(3)), oracle.Item("usage_a", _CALLS, Fraction(0))),
        events=(oracle.Event("calls", datetime(2024, 3, 2, tzinfo=_UTC), Fraction(10)),),
        changes=(
            oracle.Change(datetime(2024, 3, 11, tzinfo=_UTC), "cancel_now", behaviour="always_invoice"),
        ),
    )
    _first, final = _both(history)
    assert _amounts(final) == [("usage", 10, 20), ("credit", 3, -2032)]


def test_a_credit_shows_the_quantity_it_credits() -> None:
    # History 52: after 2 -> 19 seats with behaviour none (March 5), 19 -> 1 on March 11 credits
    # the March fee, which billed 2 seats: -round(2000 * 21/31) = -1355; debit round(1000 * 21/31)
    # = 677. The oracle showed quantity 19 on the credit; the amounts always agreed.
    changes = (
        oracle.Change(
            datetime(2024, 3, 5, tzinfo=_UTC),
            "update",
            (oracle.Op("set_quantity", "seat", Fraction(19)),),
            behaviour="none",
        ),
        oracle.Change(
            datetime(2024, 3, 11, tzinfo=_UTC), "update", (oracle.Op("set_quantity", "seat", Fraction(1)),)
        ),
    )
    april = _both(_march(items=(oracle.Item("seat", _SEAT, Fraction(2)),), changes=changes))[1]
    assert _amounts(april) == [("fee", 1, 1000), ("credit", 2, -1355), ("debit", 1, 677)]


def test_the_same_quantity_again_changes_nothing() -> None:
    # History 177: the oracle credited and debited a "change" from 12 seats to 12; the rules
    # prorate only items whose price or quantity changes. The oracle was wrong.
    change = oracle.Change(
        datetime(2024, 3, 11, tzinfo=_UTC), "update", (oracle.Op("set_quantity", "seat", Fraction(3)),)
    )
    april = _both(_march(changes=(change,)))[1]
    assert _amounts(april) == [("fee", 3, 3000)]


def test_an_import_after_its_trial_is_billed_even_without_a_payment_method() -> None:
    # History 768: trial Mar 1 -> Mar 8 on a plan that cancels trials without a payment method,
    # imported on March 20. The driver bills it (it converted before it was created here); the
    # oracle returned no invoice. The rules did not say; billing it is the reading kept. The
    # period [Mar 8, Apr 8) holding the creation is not billed; April 8 bills the next one.
    history = _march(
        trial_end=datetime(2024, 3, 8, tzinfo=_UTC),
        cancel_trial_without_payment_method=True,
        has_payment_method=False,
        created_at=datetime(2024, 3, 20, tzinfo=_UTC),
        horizon=datetime(2024, 4, 8, tzinfo=_UTC),
    )
    (april,) = _both(history)
    assert april[0] == datetime(2024, 4, 8, tzinfo=_UTC)
    assert _amounts(april) == [("fee", 3, 3000)]


def main(argv: list[str]) -> int:
    first, count = int(argv[1]), int(argv[2])
    failures = 0
    for n in range(first, first + count):
        try:
            found = disagreement(n)
        except Exception as error:  # a crash is a finding too
            found = f"history {n}: {type(error).__name__}: {error}"
        if found is not None:
            failures += 1
            print(found, end="\n\n")
    print(f"{failures} of {count} disagree")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
