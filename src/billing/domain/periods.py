"""Billing cycles: where a subscription's periods begin and end (docs/billing-rules.md §1).

Instants are aware UTC datetimes; periods are half-open ``[start, end)``. Boundaries are computed
in the customer's IANA time zone, each from the anchor (never from the previous boundary), so
month-end clamping re-expands (Jan 31 -> Feb 28 -> Mar 31) and a DST change never drifts the
local time of day. A local time that does not exist or exists twice resolves as ``zoneinfo``
does with ``fold=0``.
"""

from __future__ import annotations

import calendar
import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from billing.domain.catalog import Interval
from billing.domain.errors import InvalidArgument


class AnchorMode(enum.Enum):
    ANNIVERSARY = "anniversary"
    CALENDAR = "calendar"


@dataclass(frozen=True, slots=True)
class Period:
    """``[start, end)`` in UTC. ``start == end`` is an empty period (a cancel on a boundary)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("period bounds must be aware datetimes")
        if self.end < self.start:
            raise ValueError(f"period ends before it starts: {self.start} > {self.end}")

    def contains(self, instant: datetime) -> bool:
        return self.start <= instant < self.end

    @property
    def empty(self) -> bool:
        return self.start == self.end


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; raises InvalidArgument for an unknown one."""
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        raise InvalidArgument.single("time_zone", f"unknown IANA time zone {name[:60]!r}") from None


def to_utc(local: datetime, time_zone: str) -> datetime:
    """A naive local wall-clock time in ``time_zone`` as a UTC instant, ``fold=0`` (§1)."""
    return local.replace(tzinfo=zone(time_zone), fold=0).astimezone(UTC)


def local_wall(instant: datetime, time_zone: str) -> datetime:
    """The naive local wall-clock time of ``instant`` in ``time_zone``."""
    return instant.astimezone(zone(time_zone)).replace(tzinfo=None)


def add_months(local: datetime, months: int) -> datetime:
    """``local`` plus ``months`` calendar months, keeping its day of month clamped to the month."""
    total = local.year * 12 + (local.month - 1) + months
    year, month = divmod(total, 12)
    day = min(local.day, calendar.monthrange(year, month + 1)[1])
    return local.replace(year=year, month=month + 1, day=day)


def shift_local(instant: datetime, time_zone: str, interval: Interval, count: int) -> datetime:
    """``instant`` moved by ``count`` intervals on the local wall clock, back in UTC (§1, §5)."""
    local = local_wall(instant, time_zone)
    return to_utc(_add(local, interval, count), time_zone)


def _add(local: datetime, interval: Interval, count: int) -> datetime:
    match interval:
        case Interval.DAY:
            return local + timedelta(days=count)
        case Interval.WEEK:
            return local + timedelta(days=7 * count)
        case Interval.MONTH:
            return add_months(local, count)
        case Interval.YEAR:
            return add_months(local, 12 * count)


@dataclass(frozen=True, slots=True)
class BillingCycle:
    """Boundaries ``boundary(k)`` for every integer ``k``; period ``k`` is ``[boundary(k), boundary(k+1))``.

    Anniversary: ``boundary(0)`` is the anchor itself and ``boundary(k)`` is the anchor's local
    wall-clock time plus ``k * interval_count`` intervals. Calendar (``interval_count`` 1 only):
    boundaries are local midnights (every day, every Monday, every 1st, every January 1st) and
    ``boundary(0)`` is the first of them at or after the anchor.
    """

    interval: Interval
    interval_count: int
    anchor: datetime
    time_zone: str
    mode: AnchorMode = AnchorMode.ANNIVERSARY

    def __post_init__(self) -> None:
        if self.interval_count < 1:
            raise ValueError("interval_count must be at least 1")
        if self.mode is AnchorMode.CALENDAR and self.interval_count != 1:
            raise ValueError("calendar alignment needs an interval count of 1")
        if self.anchor.tzinfo is None:
            raise ValueError("the anchor must be an aware datetime")
        zone(self.time_zone)

    def boundary(self, k: int) -> datetime:
        """The UTC instant of boundary ``k``, computed from the anchor."""
        if self.mode is AnchorMode.ANNIVERSARY and k == 0:
            # NOTE: the anchor itself, even when it is the second occurrence of a repeated
            # local time, which fold=0 would move an hour earlier (billing-rules.md §1).
            return self.anchor
        return _boundary(self, k)

    def computed_boundary(self, k: int) -> datetime:
        """``boundary(k)`` from the local calendar, for ``k`` other than an anniversary's 0."""
        if self.mode is AnchorMode.ANNIVERSARY:
            return to_utc(_add(self._local_anchor(), self.interval, k * self.interval_count), self.time_zone)
        first = self._first_calendar_date()
        return to_utc(datetime.combine(_add_date(first, self.interval, k), time()), self.time_zone)

    def period(self, k: int) -> Period:
        return Period(self.boundary(k), self.boundary(k + 1))

    def index_at(self, instant: datetime) -> int:
        """The ``k`` whose period ``[boundary(k), boundary(k+1))`` contains ``instant``."""
        k = self._estimate(instant)
        while self.boundary(k) > instant:
            k -= 1
        while self.boundary(k + 1) <= instant:
            k += 1
        return k

    def period_containing(self, instant: datetime) -> Period:
        return self.period(self.index_at(instant))

    def _local_anchor(self) -> datetime:
        return local_wall(self.anchor, self.time_zone)

    def _first_calendar_date(self) -> date:
        local = self._local_anchor()
        day = local.date()
        match self.interval:
            case Interval.DAY:
                start = day
            case Interval.WEEK:
                start = day - timedelta(days=day.weekday())
            case Interval.MONTH:
                start = day.replace(day=1)
            case Interval.YEAR:
                start = day.replace(month=1, day=1)
        if to_utc(datetime.combine(start, time()), self.time_zone) < self.anchor:
            start = _add_date(start, self.interval, 1)
        return start

    def _estimate(self, instant: datetime) -> int:
        """A guess of ``index_at`` within a step or two, from local calendar arithmetic."""
        here = local_wall(instant, self.time_zone)
        base = (
            self._local_anchor()
            if self.mode is AnchorMode.ANNIVERSARY
            else datetime.combine(self._first_calendar_date(), time())
        )
        match self.interval:
            case Interval.DAY:
                steps = (here.date() - base.date()).days
            case Interval.WEEK:
                steps = (here.date() - base.date()).days // 7
            case Interval.MONTH:
                steps = (here.year - base.year) * 12 + here.month - base.month
            case Interval.YEAR:
                steps = here.year - base.year
        return steps // self.interval_count


# A close asks for the same few boundaries of its cycle a dozen times, each two time-zone
# conversions (~12 µs here, ~1 µs from the cache); a cycle is an immutable value, and equal
# cycles have equal boundaries, so the answers can be kept (bounded: many subscriptions).
@lru_cache(maxsize=8192)
def _boundary(cycle: BillingCycle, k: int) -> datetime:
    return cycle.computed_boundary(k)


def _add_date(day: date, interval: Interval, count: int) -> date:
    return _add(datetime.combine(day, time()), interval, count).date()
