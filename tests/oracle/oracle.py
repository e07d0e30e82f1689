"""The differential oracle: docs/billing-rules.md implemented a second time, slowly and plainly.

Written from the specification (docs/billing-rules.md, DESIGN.md §2-§3) only, never from the
production code of periods, proration, subscriptions or invoices, so that the two can disagree.
Every number is a ``fractions.Fraction`` until the one rounding of a line (half away from zero);
month arithmetic is done by hand with ``calendar`` and ``zoneinfo``. Nothing here is fast.

Units: amounts and unit prices are minor units of the subscription's currency (so the currency's
exponent never enters the arithmetic); instants are aware UTC datetimes in whole seconds.

Readings of the specification where it leaves a choice (also in docs/architecture.md,
"Differential oracle"):

- A change inside a calendar cycle's partial first period ``[start, B1)`` prorates its debit over
  the whole calendar period ``[B0, B1)`` that contains it, as the partial period's own fee is.
- A change in the running period of an imported subscription credits nothing (no fee line covers
  that period: it was paid elsewhere) and debits as usual.
- An import created after its trial ended converted already: ``cancel_if_no_payment_method``
  no longer applies to it.
- A change during a trial changes only the items; a cancel at period end during a trial ends the
  subscription at the trial's end (never invoiced); a change scheduled then applies at it.
- Usage items are never prorated; a change ends one item record and starts another, and each
  record gives its own usage line.
- The first invoice (at the billing start) counts as a closing invoice for ``once`` coupons, and so
  does the final invoice of a cancel now (its boundary is the cancellation instant).
- ``always_invoice`` invoices only that change's lines (earlier pending lines wait for the close);
  a cancel now puts its credits on the final invoice it issues at the same instant, whether the
  behaviour is ``create_prorations`` or ``always_invoice``.
- A credit line shows the quantity of the coverage it credits (what was billed), which differs
  from the item's quantity after a change made with behaviour ``none``.
- Coverage belongs to an item key (``seat`` keeps its key across plan changes): a change with
  behaviour ``none`` leaves the earlier coverage of that key uncredited, for a later change to credit.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

ZERO = Fraction(0)

# ---------------------------------------------------------------------------------------------
# Input: a plain description of one subscription's history.


@dataclass(frozen=True)
class Tier:
    """Units in ``(previous up_to, up_to]`` pay ``unit`` each; ``flat`` once the tier is entered."""

    up_to: Fraction | None
    unit: Fraction = ZERO
    flat: Fraction = ZERO


@dataclass(frozen=True)
class Price:
    """A price in minor units. ``meter`` set makes it a usage price (billed in arrears).

    ``model``: ``flat`` (``amount`` whatever the quantity), ``per_unit`` (``amount`` per unit),
    ``package`` (``amount`` per started/completed package of ``package_size`` units, after
    ``free_units``), ``graduated`` and ``volume`` (``tiers``).
    """

    product: str
    model: str
    amount: Fraction = ZERO
    tiers: tuple[Tier, ...] = ()
    package_size: Fraction = Fraction(1)
    package_round_up: bool = True
    free_units: Fraction = ZERO
    meter: str | None = None
    aggregation: str = "sum"  # sum | count | max
    filters: tuple[tuple[str, str], ...] = ()

    @property
    def usage(self) -> bool:
        return self.meter is not None


@dataclass(frozen=True)
class Item:
    key: str
    price: Price
    quantity: Fraction = Fraction(1)


@dataclass(frozen=True)
class Coupon:
    code: str
    duration: str  # once | repeating | forever
    percent_off: Fraction | None = None
    amount_off: int | None = None
    months: int = 0
    products: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Op:
    """One item operation of a change: ``set_quantity``, ``set_price``, ``add``, ``remove``."""

    kind: str
    item: str
    quantity: Fraction = Fraction(1)
    price: Price | None = None


@dataclass(frozen=True)
class Change:
    """What happens at ``at``: ``update`` (``ops``), ``coupon``, ``cancel_now``, ``cancel_at_period_end``.

    ``behaviour``: ``create_prorations``, ``always_invoice``, ``none``, or ``period_end`` (the ops
    are scheduled for the end of the current period and applied then without proration).
    """

    at: datetime
    kind: str
    ops: tuple[Op, ...] = ()
    coupon: Coupon | None = None
    behaviour: str = "create_prorations"


@dataclass(frozen=True)
class Event:
    meter: str
    at: datetime
    value: Fraction = Fraction(1)
    properties: tuple[tuple[str, str], ...] = ()
    received_at: datetime | None = None  # None: when it happened; later: a late event

    @property
    def arrived(self) -> datetime:
        return self.at if self.received_at is None else self.received_at


@dataclass(frozen=True)
class History:
    """One subscription from ``start`` until ``horizon`` (boundaries at or before it are closed)."""

    zone: str
    country: str
    currency: str
    interval: str  # day | week | month | year
    interval_count: int
    start: datetime
    horizon: datetime
    items: tuple[Item, ...]
    calendar: bool = False
    per_day: bool = False
    trial_end: datetime | None = None
    cancel_trial_without_payment_method: bool = False
    has_payment_method: bool = True
    created_at: datetime | None = None  # later than start: an import, "already paid elsewhere"
    coupons: tuple[Coupon, ...] = ()  # redeemed at creation
    changes: tuple[Change, ...] = ()
    events: tuple[Event, ...] = ()
    tax_codes: Mapping[str, str] = field(default_factory=dict)  # product -> tax code
    # (country, tax code) -> (rate id, percentage); the code "" holds the country's default rate.
    tax_rates: Mapping[tuple[str, str], tuple[str, Fraction]] = field(default_factory=dict)
    credit_balance: int = 0
    grace: timedelta = timedelta(hours=1)  # a close is finalized (rates its usage) this long after


LATE_EVENT_HORIZON = timedelta(days=35)

# ---------------------------------------------------------------------------------------------
# Output: the invoices.


@dataclass(frozen=True)
class Line:
    """``kind``: usage (arrears, window), fee (advance, period), credit or debit (proration),
    adjustment (a usage window rated again with late events: the difference)."""

    kind: str
    item: str
    product: str
    start: datetime
    end: datetime
    quantity: Fraction
    exact: Fraction
    amount: int
    discount: int = 0
    tax: int = 0

    @property
    def net(self) -> int:
        return self.amount - self.discount


@dataclass(frozen=True)
class Invoice:
    """``kind``: first, closing, final, change. ``at`` is the boundary or the change instant."""

    at: datetime
    kind: str
    lines: tuple[Line, ...]
    subtotal: int
    discount: int
    tax: int
    total: int
    credit_applied: int
    amount_due: int
    balance_after: int


# ---------------------------------------------------------------------------------------------
# Arithmetic.


def round_half_away(value: Fraction) -> int:
    """The one rounding: to a whole minor unit, half away from zero."""
    magnitude = math.floor(abs(value) + Fraction(1, 2))
    return magnitude if value >= 0 else -magnitude


def largest_remainder(total: int, shares: Sequence[Fraction]) -> list[int]:
    """Each share floored, then the units ``total`` still lacks to the largest fractional parts.

    Ties go to the earlier share. ``total`` is at least the sum of the floors and at most one
    unit per share above it, so every part is the floor or the ceiling of its share.
    """
    parts = [math.floor(share) for share in shares]
    left = total - sum(parts)
    assert 0 <= left <= len(shares), "the total is not a rounding of the shares"
    by_remainder = sorted(range(len(shares)), key=lambda i: (-(shares[i] - parts[i]), i))
    for i in by_remainder[:left]:
        parts[i] += 1
    return parts


def split(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` (>= 0) in proportion to ``weights`` (>= 0), by largest remainder (an amount discount)."""
    assert total >= 0
    assert all(w >= 0 for w in weights)
    if total == 0:
        return [0] * len(weights)
    return largest_remainder(total, [Fraction(total * w, sum(weights)) for w in weights])


def charge(price: Price, quantity: Fraction) -> Fraction:
    """The exact, unrounded charge of ``price`` for ``quantity`` (DESIGN.md §4)."""
    if price.model == "flat":
        return price.amount
    if price.model == "per_unit":
        return quantity * price.amount
    if price.model == "package":
        billable = max(quantity - price.free_units, ZERO)
        packages = billable / price.package_size
        count = math.ceil(packages) if price.package_round_up else math.floor(packages)
        return count * price.amount
    if price.model == "graduated":
        total, below = ZERO, ZERO
        for index, tier in enumerate(price.tiers):
            top = quantity if tier.up_to is None else min(quantity, tier.up_to)
            units = max(top - below, ZERO)
            if units > 0 or index == 0:  # quantity 0 still bills the first tier's flat amount
                total += units * tier.unit + tier.flat
            if tier.up_to is None:
                break
            below = tier.up_to
        return total
    if price.model == "volume":
        for tier in price.tiers:
            if tier.up_to is None or quantity <= tier.up_to:
                return quantity * tier.unit + tier.flat
        raise AssertionError("tiers must end with an open tier")
    raise AssertionError(f"unknown price model {price.model!r}")


# ---------------------------------------------------------------------------------------------
# Time: boundaries by hand (billing rules §1).


def _local_naive(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def _to_utc(naive: datetime, zone: ZoneInfo) -> datetime:
    return naive.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _plus_months(day: date, months: int, keep_day: int) -> date:
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(keep_day, calendar.monthrange(year, month + 1)[1]))


def seconds(start: datetime, end: datetime) -> int:
    delta = end - start
    assert delta.microseconds == 0, "instants are whole seconds"
    return delta.days * 86_400 + delta.seconds


def local_days(start: datetime, end: datetime, zone: ZoneInfo) -> int:
    return (end.astimezone(zone).date() - start.astimezone(zone).date()).days


def add_local_months(instant: datetime, months: int, zone: ZoneInfo) -> datetime:
    """``instant`` plus whole months in ``zone``, day clamped to the month (coupon durations)."""
    local = _local_naive(instant, zone)
    day = _plus_months(local.date(), months, local.day)
    return _to_utc(datetime.combine(day, local.time()), zone)


class Cycle:
    """Billing boundaries of one subscription: anniversary from an anchor, or calendar."""

    def __init__(self, history: History, anchor: datetime) -> None:
        self.zone = ZoneInfo(history.zone)
        self.interval = history.interval
        self.count = history.interval_count
        self.calendar = history.calendar
        self.anchor = anchor
        assert not self.calendar or self.count == 1, "calendar cycles have an interval count of 1"

    def anniversary(self, k: int) -> datetime:
        if k == 0:
            return self.anchor
        local = _local_naive(self.anchor, self.zone)
        steps = k * self.count
        if self.interval == "day":
            naive = local + timedelta(days=steps)
        elif self.interval == "week":
            naive = local + timedelta(days=7 * steps)
        else:
            months = steps if self.interval == "month" else 12 * steps
            naive = datetime.combine(_plus_months(local.date(), months, local.day), local.time())
        return _to_utc(naive, self.zone)

    def _calendar_start(self, day: date) -> date:
        """The first day of the calendar period that contains the local date ``day``."""
        if self.interval == "day":
            return day
        if self.interval == "week":
            return day - timedelta(days=day.weekday())
        if self.interval == "month":
            return day.replace(day=1)
        return date(day.year, 1, 1)

    def _calendar_next(self, day: date) -> date:
        if self.interval == "day":
            return day + timedelta(days=1)
        if self.interval == "week":
            return day + timedelta(days=7)
        if self.interval == "month":
            return _plus_months(day, 1, 1)
        return date(day.year + 1, 1, 1)

    def _midnight(self, day: date) -> datetime:
        return _to_utc(datetime.combine(day, time()), self.zone)

    def calendar_period(self, instant: datetime) -> tuple[datetime, datetime]:
        """The calendar period ``[B, B')`` with ``B <= instant < B'``."""
        first = self._calendar_start(instant.astimezone(self.zone).date())
        while self._midnight(first) > instant:
            first = self._calendar_start(first - timedelta(days=1))
        following = self._calendar_next(first)
        while self._midnight(following) <= instant:
            first, following = following, self._calendar_next(following)
        return self._midnight(first), self._midnight(following)

    def next_boundary(self, instant: datetime) -> datetime:
        """The first boundary strictly after ``instant`` (which is at or after the anchor)."""
        if self.calendar:
            return self.calendar_period(instant)[1]
        k = 1
        while self.anniversary(k) <= instant:
            k += 1
        return self.anniversary(k)

    def whole_period(self, period_start: datetime, period_end: datetime) -> tuple[datetime, datetime]:
        """The full cycle period a (possibly partial) billing period belongs to."""
        if self.calendar:
            return self.calendar_period(period_start)
        return period_start, period_end


# ---------------------------------------------------------------------------------------------
# The simulation.


@dataclass
class _Record:
    """An item as it was over ``[valid_from, valid_to)``."""

    key: str
    price: Price
    quantity: Fraction
    valid_from: datetime
    valid_to: datetime | None = None

    def valid_at(self, instant: datetime) -> bool:
        return self.valid_from <= instant and (self.valid_to is None or instant < self.valid_to)


def _item_order(record: _Record | None) -> tuple[int, str]:
    """Lines of a group are ordered seat, add-ons, usage prices, then by key (billing rules §3)."""
    assert record is not None
    rank = 2 if record.price.usage else 0 if record.key == "seat" else 1
    return rank, record.key


@dataclass
class _Coverage:
    """A fee line or proration debit that billed ``[start, end)`` of item ``key`` for ``net``."""

    key: str
    quantity: Fraction
    start: datetime
    end: datetime
    net: int
    credited: bool = False


@dataclass
class _Billed:
    """A usage line of an issued invoice and what has been billed for its window so far."""

    key: str
    price: Price
    start: datetime
    end: datetime
    billed: int


@dataclass
class _Redemption:
    coupon: Coupon
    at: datetime
    used: bool = False


class _Run:
    def __init__(self, history: History) -> None:
        self.h = history
        self.zone = ZoneInfo(history.zone)
        self.created = history.created_at or history.start
        self.billing_start = history.trial_end or history.start
        anchor = self.billing_start
        self.cycle = Cycle(history, anchor)
        self.records = [_Record(i.key, i.price, i.quantity, history.start) for i in history.items]
        self.redemptions = [_Redemption(c, self.created) for c in history.coupons]
        self.coverages: list[_Coverage] = []
        self.pending: list[Line] = []
        self.billed_usage: list[_Billed] = []
        self.invoices: list[Invoice] = []
        self.balance = history.credit_balance
        self.period_start = self.billing_start  # start of the billing period now running
        self.ends_at: datetime | None = None
        self.scheduled: list[Op] = []

    # -- items --------------------------------------------------------------------------------

    def _live(self, key: str) -> _Record | None:
        found = [r for r in self.records if r.key == key and r.valid_to is None]
        assert len(found) <= 1
        return found[0] if found else None

    def _licensed_at(self, instant: datetime) -> list[_Record]:
        return sorted((r for r in self.records if not r.price.usage and r.valid_at(instant)), key=_item_order)

    def _apply_op(self, op: Op, at: datetime) -> tuple[_Record | None, _Record | None]:
        """End the old record and start the new one; returns (old, new)."""
        old = self._live(op.item)
        if old is not None and op.kind == "set_quantity" and op.quantity == old.quantity:
            return None, None  # nothing changes: no proration line (billing rules §4)
        if old is not None:
            old.valid_to = at
        new: _Record | None = None
        if op.kind == "add":
            assert old is None
            assert op.price is not None
            new = _Record(op.item, op.price, op.quantity, at)
        elif op.kind == "set_quantity":
            assert old is not None
            new = _Record(op.item, old.price, op.quantity, at)
        elif op.kind == "set_price":
            assert old is not None
            assert op.price is not None
            new = _Record(op.item, op.price, old.quantity, at)
        else:
            assert op.kind == "remove"
            assert old is not None
        if new is not None:
            self.records.append(new)
        return old, new

    # -- discounts ----------------------------------------------------------------------------

    def _active(self, redemption: _Redemption, when: datetime, debit: bool) -> bool:
        coupon = redemption.coupon
        if when < redemption.at:
            return False
        if coupon.duration == "once":
            return not debit and not redemption.used
        if coupon.duration == "repeating":
            return when < add_local_months(redemption.at, coupon.months, self.zone)
        return True

    def _discount(self, lines: list[Line], when: datetime, debit: bool) -> list[Line]:
        """Coupons active at ``when``, in order of redemption, each on what the previous left."""
        owed = [line.amount for line in lines]
        taken = [0] * len(lines)
        for redemption in self.redemptions:
            if not self._active(redemption, when, debit):
                continue
            coupon = redemption.coupon
            if coupon.duration == "once":
                redemption.used = True
            eligible = [not coupon.products or line.product in coupon.products for line in lines]
            if coupon.percent_off is not None:
                off = [
                    min(o, round_half_away(o * coupon.percent_off / 100)) if ok else 0
                    for o, ok in zip(owed, eligible, strict=True)
                ]
            else:
                assert coupon.amount_off is not None
                weights = [o if ok else 0 for o, ok in zip(owed, eligible, strict=True)]
                off = split(min(coupon.amount_off, sum(weights)), weights)
            owed = [o - d for o, d in zip(owed, off, strict=True)]
            taken = [t + d for t, d in zip(taken, off, strict=True)]
        return [replace(line, discount=d) for line, d in zip(lines, taken, strict=True)]

    # -- invoices -----------------------------------------------------------------------------

    def _rate(self, product: str) -> tuple[str, Fraction]:
        code = self.h.tax_codes.get(product, "")
        rates = self.h.tax_rates
        if (self.h.country, code) in rates:
            return rates[(self.h.country, code)]
        return rates.get((self.h.country, ""), ("", ZERO))

    def _issue(self, at: datetime, kind: str, lines: list[Line]) -> None:
        if not lines:
            return
        taxed = list(lines)
        rates: dict[tuple[str, Fraction], list[int]] = {}
        for index, line in enumerate(lines):
            rates.setdefault(self._rate(line.product), []).append(index)
        for (_, percent), indexes in rates.items():
            # Per rate: the sum of the nets taxed and rounded once, then given back to the lines
            # by their exact shares (billing rules §6; nets of credits are negative).
            shares = [lines[i].net * percent / 100 for i in indexes]
            tax = round_half_away(sum(shares, ZERO))
            for i, part in zip(indexes, largest_remainder(tax, shares), strict=True):
                taxed[i] = replace(taxed[i], tax=part)
        subtotal = sum(line.amount for line in taxed)
        discount = sum(line.discount for line in taxed)
        tax = sum(line.tax for line in taxed)
        total = subtotal - discount + tax
        applied = min(self.balance, total) if total > 0 else 0
        self.balance += -applied if total > 0 else -total
        self.invoices.append(
            Invoice(
                at,
                kind,
                tuple(taxed),
                subtotal,
                discount,
                tax,
                total,
                applied,
                max(total - applied, 0),
                self.balance,
            )
        )

    def _factor(self, part_start: datetime, whole_start: datetime, end: datetime) -> Fraction:
        """Proration factor of ``[part_start, end)`` in ``[whole_start, end)`` (billing rules §4)."""
        if self.h.per_day:
            whole = local_days(whole_start, end, self.zone)
            return Fraction(local_days(part_start, end, self.zone), whole) if whole else ZERO
        return Fraction(seconds(part_start, end), seconds(whole_start, end))

    def _fees(self, start: datetime, end: datetime) -> list[Line]:
        """Fees in advance of the period ``[start, end)``, prorated when it is a partial one."""
        whole_start, whole_end = self.cycle.whole_period(start, end)
        assert whole_end == end
        factor = self._factor(start, whole_start, end) if whole_start != start else Fraction(1)
        lines = []
        for record in self._licensed_at(start):
            exact = charge(record.price, record.quantity) * factor
            lines.append(
                Line(
                    "fee",
                    record.key,
                    record.price.product,
                    start,
                    end,
                    record.quantity,
                    exact,
                    round_half_away(exact),
                )
            )
        return lines

    def _usage(self, start: datetime, end: datetime, seen_by: datetime) -> list[Line]:
        """Usage in arrears of ``[start, end)``: one line per usage record and validity window."""
        lines = []
        for record in sorted(self.records, key=lambda r: (_item_order(r), r.valid_from)):
            if not record.price.usage:
                continue
            low = max(start, record.valid_from)
            high = end if record.valid_to is None else min(end, record.valid_to)
            if low >= high:
                continue
            quantity = self._aggregate(record.price, low, high, seen_by)
            exact = charge(record.price, quantity)
            amount = round_half_away(exact)
            lines.append(Line("usage", record.key, record.price.product, low, high, quantity, exact, amount))
        return lines

    def _aggregate(self, price: Price, start: datetime, end: datetime, seen_by: datetime) -> Fraction:
        """The meter's aggregate of the matching events in ``[start, end)`` received by ``seen_by``."""
        wanted = set(price.filters)
        values = [
            e.value
            for e in self.h.events
            if e.meter == price.meter
            and start <= e.at < end
            and e.arrived <= seen_by
            and wanted <= set(e.properties)
        ]
        if price.aggregation == "sum":
            return sum(values, ZERO)
        if price.aggregation == "count":
            return Fraction(len(values))
        assert price.aggregation == "max"
        return max(values, default=ZERO)

    def _close(self, at: datetime, usage_from: datetime, final: bool, kind: str) -> None:
        """The invoice of a boundary (or of a cancellation now): usage, fees, pending, adjustments.

        It is finalized ``grace`` after ``at`` and rates the events received by then.
        """
        seen_by = at + self.h.grace
        adjustments = self._adjustments(usage_from, seen_by)
        discounted = self._usage(usage_from, at, seen_by)
        if not final:
            end = self.cycle.next_boundary(at)
            fees = self._fees(at, end)
            discounted += fees
        discounted = self._discount(discounted, at, debit=False)
        for line in discounted:
            if line.kind == "fee":
                self.coverages.append(_Coverage(line.item, line.quantity, line.start, line.end, line.net))
            if line.kind == "usage":
                price = next(
                    r.price
                    for r in self.records
                    if r.key == line.item
                    and r.valid_from <= line.start
                    and (r.valid_to or line.end) >= line.end
                )
                self.billed_usage.append(_Billed(line.item, price, line.start, line.end, line.amount))
        pending, self.pending = self.pending, []
        self._issue(at, kind, discounted + pending + adjustments)

    def _adjustments(self, previous: datetime, seen_by: datetime) -> list[Line]:
        """Earlier usage lines rated again with the events received since (billing rules §3.4).

        A line is rated again when its window ended after ``previous − 35 days`` (``previous``:
        the boundary before this one); an adjustment is the difference from what was billed.
        """
        lines = []
        for billed in self.billed_usage:
            if billed.end <= previous - LATE_EVENT_HORIZON:
                continue
            quantity = self._aggregate(billed.price, billed.start, billed.end, seen_by)
            amount = round_half_away(charge(billed.price, quantity))
            if amount != billed.billed:
                difference = amount - billed.billed
                lines.append(
                    Line(
                        "adjustment",
                        billed.key,
                        billed.price.product,
                        billed.start,
                        billed.end,
                        quantity,
                        Fraction(difference),
                        difference,
                    )
                )
                billed.billed = amount
        return lines

    def _prorate(self, at: datetime, changed: Iterable[tuple[_Record | None, _Record | None]]) -> list[Line]:
        """Credits of the old configuration and debits of the new one (billing rules §4)."""
        period_end = self.cycle.next_boundary(self.period_start)
        whole_start, _ = self.cycle.whole_period(self.period_start, period_end)
        credits: list[Line] = []
        debits: list[Line] = []
        for old, new in sorted(
            (pair for pair in changed if pair != (None, None)),
            key=lambda pair: _item_order(pair[0] or pair[1]),
        ):
            if old is not None and not old.price.usage:
                for cover in self.coverages:
                    if cover.key == old.key and not cover.credited and cover.start <= at < cover.end:
                        cover.credited = True
                        exact = cover.net * self._factor(at, cover.start, cover.end)
                        credits.append(
                            Line(
                                "credit",
                                old.key,
                                old.price.product,
                                at,
                                cover.end,
                                cover.quantity,
                                -exact,
                                -round_half_away(exact),
                            )
                        )
            if new is not None and not new.price.usage:
                exact = charge(new.price, new.quantity) * self._factor(at, whole_start, period_end)
                debits.append(
                    Line(
                        "debit",
                        new.key,
                        new.price.product,
                        at,
                        period_end,
                        new.quantity,
                        exact,
                        round_half_away(exact),
                    )
                )
        debits = self._discount(debits, at, debit=True)
        for line in debits:
            self.coverages.append(_Coverage(line.item, line.quantity, line.start, line.end, line.net))
        return credits + debits

    def _prorated(self, at: datetime, behaviour: str, lines: list[Line]) -> None:
        if behaviour == "create_prorations":
            self.pending.extend(lines)
        elif behaviour == "always_invoice":
            self._issue(at, "change", lines)

    def _change(self, change: Change) -> None:
        at = change.at
        in_trial = at < self.billing_start
        billed = not in_trial and change.behaviour != "none"
        if change.kind == "coupon":
            assert change.coupon is not None
            self.redemptions.append(_Redemption(change.coupon, at))
        elif change.kind == "update":
            if change.behaviour == "period_end":
                self.scheduled.extend(change.ops)
                return
            changed = [self._apply_op(op, at) for op in change.ops]
            if billed:
                self._prorated(at, change.behaviour, self._prorate(at, changed))
        elif change.kind == "cancel_at_period_end":
            self.ends_at = self.billing_start if in_trial else self.cycle.next_boundary(self.period_start)
        else:
            assert change.kind == "cancel_now"
            live = [r for r in self.records if r.valid_to is None]
            for record in live:
                record.valid_to = at
            if billed:  # always_invoice too: the final invoice at ``at`` is that invoice
                self.pending.extend(self._prorate(at, [(r, None) for r in live]))
            if not in_trial:
                self._close(at, self.period_start, final=True, kind="final")
            self.ends_at = at
            self.pending = []

    def run(self) -> list[Invoice]:
        h = self.h
        converted_before_creation = h.trial_end is not None and h.trial_end < self.created
        trial_cancels = h.cancel_trial_without_payment_method and not h.has_payment_method
        if h.trial_end is not None and trial_cancels and not converted_before_creation:
            return []
        changes = sorted(h.changes, key=lambda c: c.at)
        imported = self.created > self.billing_start
        boundary = self.billing_start
        if imported:
            # Periods that began before creation are not billed; the running one's usage is.
            while self.cycle.next_boundary(boundary) <= self.created:
                boundary = self.cycle.next_boundary(boundary)
            self.period_start = boundary
            boundary = self.cycle.next_boundary(boundary)
        else:
            while changes and changes[0].at < self.billing_start:  # during the trial
                change = changes.pop(0)
                if self.ends_at is None:
                    self._change(change)
            if self.ends_at is not None and self.ends_at <= self.billing_start:
                return self.invoices
            self._apply_scheduled(self.billing_start)
            self._first_invoice()
            boundary = self.cycle.next_boundary(self.billing_start)
        while True:
            while changes and changes[0].at < boundary:
                change = changes.pop(0)
                if self.ends_at is None or change.at < self.ends_at:  # active until its end
                    self._change(change)
            if self.ends_at is not None and self.ends_at < boundary:
                break  # canceled now: its final invoice is issued
            if boundary > h.horizon:
                break
            self._apply_scheduled(boundary)
            final = self.ends_at == boundary
            self._close(boundary, self.period_start, final=final, kind="final" if final else "closing")
            if final:
                break
            self.period_start = boundary
            boundary = self.cycle.next_boundary(boundary)
        return self.invoices

    def _apply_scheduled(self, at: datetime) -> None:
        scheduled, self.scheduled = self.scheduled, []
        for op in scheduled:
            self._apply_op(op, at)

    def _first_invoice(self) -> None:
        start = self.billing_start
        lines = self._discount(self._fees(start, self.cycle.next_boundary(start)), start, debit=False)
        for line in lines:
            self.coverages.append(_Coverage(line.item, line.quantity, line.start, line.end, line.net))
        self._issue(start, "first", lines)


def invoices(history: History) -> list[Invoice]:
    """Every invoice of ``history`` up to its horizon, in the order they are issued."""
    return _Run(history).run()
