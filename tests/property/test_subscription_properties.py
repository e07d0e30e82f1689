"""Properties of periods, proration, discounts and tax that must hold for every input.

Zones include the extremes the rules name: UTC+14 (Pacific/Kiritimati), UTC-12 (Etc/GMT+12),
+05:45 (Asia/Kathmandu) and Lord Howe's 30-minute DST, plus zones with ordinary DST.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.domain.catalog import Catalog, Coupon, CouponDuration, Interval, Plan, Price, Product, Recurring
from billing.domain.discounts import Discountable, discount_lines
from billing.domain.invoices import BillingCustomer, InvoiceLineKind
from billing.domain.money import round_fraction, round_minor
from billing.domain.periods import AnchorMode, BillingCycle, Period
from billing.domain.pricing import PerUnit
from billing.domain.proration import ProrationPolicy, factor
from billing.domain.simulation import ChangeAt, History, simulate
from billing.domain.subscriptions import NewSubscription, SubscriptionChange
from billing.domain.tax import TaxRate, apply_tax

PROPERTY = settings(max_examples=200, deadline=None)

ZONES = st.sampled_from(
    [
        "UTC",
        "Pacific/Kiritimati",
        "Etc/GMT+12",
        "Asia/Kathmandu",
        "Australia/Lord_Howe",
        "America/New_York",
        "Europe/London",
        "America/Santiago",
    ]
)
instants = st.datetimes(min_value=datetime(1995, 1, 1), max_value=datetime(2045, 1, 1)).map(
    lambda d: d.replace(microsecond=0, tzinfo=UTC)
)
intervals = st.sampled_from(list(Interval))
policies = st.sampled_from(list(ProrationPolicy))


@st.composite
def cycles(draw: st.DrawFn) -> BillingCycle:
    mode = draw(st.sampled_from(list(AnchorMode)))
    count = 1 if mode is AnchorMode.CALENDAR else draw(st.integers(1, 3))
    return BillingCycle(draw(intervals), count, draw(instants), draw(ZONES), mode)


@PROPERTY
@given(cycles(), st.integers(-40, 40))
def test_periods_tile_time_without_gap_or_overlap(cycle: BillingCycle, k: int) -> None:
    here, following = cycle.period(k), cycle.period(k + 1)
    assert here.start < here.end == following.start < following.end
    assert cycle.index_at(here.start) == k
    assert cycle.index_at(here.end - timedelta(microseconds=1)) == k


@PROPERTY
@given(cycles(), instants)
def test_every_instant_is_in_exactly_the_period_index_at_names(
    cycle: BillingCycle, instant: datetime
) -> None:
    k = cycle.index_at(instant)
    assert cycle.period(k).contains(instant)
    assert not cycle.period(k - 1).contains(instant)
    assert not cycle.period(k + 1).contains(instant)


@st.composite
def period_and_cuts(draw: st.DrawFn) -> tuple[Period, list[datetime], str, ProrationPolicy]:
    """A billing period of some cycle (per-day factors need one: it spans at least one local
    date) and instants inside it."""
    cycle = draw(cycles())
    whole = cycle.period(0)
    length = int((whole.end - whole.start).total_seconds())
    cuts = sorted(draw(st.lists(st.integers(0, length), max_size=6)))
    return whole, [whole.start + timedelta(seconds=c) for c in cuts], cycle.time_zone, draw(policies)


@PROPERTY
@given(period_and_cuts())
def test_factors_of_consecutive_parts_sum_to_exactly_one(
    case: tuple[Period, list[datetime], str, ProrationPolicy],
) -> None:
    whole, cuts, zone, policy = case
    edges = [whole.start, *cuts, whole.end]
    parts = [factor(a, whole, policy, zone) - factor(b, whole, policy, zone) for a, b in pairwise(edges)]
    assert all(part >= 0 for part in parts)  # monotone: a later start never leaves more
    assert sum(parts, Fraction(0)) == 1


@PROPERTY
@given(period_and_cuts(), st.integers(0, 10**9))
def test_rounded_parts_sum_to_the_whole_within_one_minor_unit_per_part(
    case: tuple[Period, list[datetime], str, ProrationPolicy], amount: int
) -> None:
    whole, cuts, zone, policy = case
    edges = [whole.start, *cuts, whole.end]
    parts = [
        round_fraction(amount * (factor(a, whole, policy, zone) - factor(b, whole, policy, zone)))
        for a, b in pairwise(edges)
    ]
    assert abs(sum(parts) - amount) <= len(parts)


def _history(
    zone: str, policy: ProrationPolicy, unit: Decimal, seats: list[int], offsets: list[int]
) -> tuple[History, Period]:
    start = datetime(2024, 1, 31, 15, tzinfo=UTC)
    cycle = BillingCycle(Interval.MONTH, 1, start, zone)
    period = cycle.period(0)
    length = int((period.end - period.start).total_seconds())
    catalog = Catalog(
        1,
        products={"s": Product("s", "Seats")},
        prices={"p": Price("p", "s", "USD", PerUnit(unit), Recurring(Interval.MONTH))},
        plans={"plan": Plan("plan", "Plan", "p")},
    )
    actions = tuple(
        ChangeAt(start + timedelta(seconds=offset * length // 1000), SubscriptionChange(seats=Decimal(q)))
        for offset, q in zip(sorted(offsets), seats[1:], strict=False)
    )
    new = NewSubscription("s", "c", "USD", zone, "plan", Decimal(seats[0]), proration_policy=policy)
    history = History(catalog, new, start, BillingCustomer("US"), period.end, actions)
    return history, period


@PROPERTY
@given(
    ZONES,
    policies,
    st.decimals(min_value=0, max_value=100_000, places=3, allow_nan=False, allow_infinity=False),
    st.lists(st.integers(0, 50), min_size=1, max_size=6),
    st.lists(st.integers(1, 999), min_size=5, max_size=5),
)
def test_a_period_of_seat_changes_bills_the_exact_prorated_total_within_a_unit_per_line(
    zone: str, policy: ProrationPolicy, unit: Decimal, seats: list[int], offsets: list[int]
) -> None:
    history, period = _history(zone, policy, unit, seats, offsets)
    invoices = simulate(history).invoices
    changes = [(a.at, a.change.seats) for a in history.actions]
    edges = [period.start, *(at for at, _ in changes), period.end]
    quantities = [Decimal(seats[0]), *(q for _, q in changes)]
    exact = sum(
        (
            Fraction(q * unit) * (factor(a, period, policy, zone) - factor(b, period, policy, zone))
            for q, (a, b) in zip(quantities, pairwise(edges), strict=True)
        ),
        Fraction(0),
    )
    lines = [invoices[0].lines[0]]
    if len(invoices) > 1:
        kinds = (InvoiceLineKind.PRORATION_CREDIT, InvoiceLineKind.PRORATION_DEBIT)
        lines += [line for line in invoices[1].lines if line.kind in kinds]
    billed = sum(line.amount for line in lines)
    assert abs(billed - exact) <= len(lines)


@PROPERTY
@given(
    st.lists(st.integers(0, 10**7), min_size=1, max_size=8),
    st.integers(0, 10**8),
    st.lists(st.booleans(), min_size=8, max_size=8),
)
def test_an_amount_off_coupon_takes_exactly_its_amount_capped_at_what_is_owed(
    amounts: list[int], off: int, eligible: list[bool]
) -> None:
    lines = [Discountable("a" if ok else "b", amount) for amount, ok in zip(amounts, eligible, strict=False)]
    coupon = Coupon(
        "c", "C", "c", CouponDuration.FOREVER, amount_off=off, currency="USD", applies_to_products=("a",)
    )
    cuts = discount_lines(coupon, lines)
    owed = sum(line.amount for line in lines if line.product_id == "a")
    assert sum(cuts) == min(off, owed)
    assert all(0 <= cut <= line.amount for cut, line in zip(cuts, lines, strict=True))


@PROPERTY
@given(
    st.lists(st.integers(-(10**7), 10**7), min_size=1, max_size=10),
    st.lists(st.sampled_from(["0", "5.5", "7", "19", "20", "25", "8.1"]), min_size=10, max_size=10),
)
def test_tax_per_rate_is_rounded_once_and_its_lines_sum_to_it(nets: list[int], percents: list[str]) -> None:
    rates = [TaxRate(p, Decimal(p)) for p in percents[: len(nets)]]
    taxes = apply_tax(nets, rates)
    for rate_id in {r.id for r in rates}:
        members = [i for i, r in enumerate(rates) if r.id == rate_id]
        percent = Fraction(Decimal(rate_id)) / 100
        assert sum(taxes[i] for i in members) == round_fraction(percent * sum(nets[i] for i in members))
        for i in members:
            exact = percent * nets[i]
            assert exact - 1 < taxes[i] < exact + 1


@PROPERTY
@given(st.decimals(min_value=-(10**12), max_value=10**12, places=6, allow_nan=False, allow_infinity=False))
def test_the_two_rounding_helpers_are_one_rule(value: Decimal) -> None:
    assert round_fraction(Fraction(value)) == round_minor(value)
