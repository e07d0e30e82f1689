"""Usage events: what makes one acceptable, and how a meter aggregates many into a quantity.

Units: event values are exact Decimals (minutes, messages, transaction amounts in minor units).
The aggregation here is the reference the SQL aggregation in the store is tested against, so
the invoice and GetUsageSummary can never disagree about what a meter means.
"""

from __future__ import annotations

import enum
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from billing.domain.catalog import Aggregation, Meter
from billing.domain.money import exact_sum

MAX_KEY_LENGTH = 128
MAX_PROPERTIES = 32
MAX_PROPERTY_KEY_LENGTH = 40
MAX_PROPERTY_VALUE_LENGTH = 200
MAX_BATCH_EVENTS = 10_000


@dataclass(frozen=True, slots=True)
class LateWindow:
    """How far from now an event's timestamp may be (DESIGN.md §5: 35 days back, 5 minutes ahead)."""

    back: timedelta = timedelta(days=35)
    ahead: timedelta = timedelta(minutes=5)

    def problem(self, occurred_at: datetime, now: datetime) -> str | None:
        return self.problem_at(occurred_at.timestamp(), now)

    def bounds(self, now: datetime) -> tuple[float, float]:
        """The earliest and the latest acceptable instant, in seconds since the epoch."""
        now_s = now.timestamp()
        return now_s - self.back.total_seconds(), now_s + self.ahead.total_seconds()

    def problem_at(self, epoch_seconds: float, now: datetime) -> str | None:
        """The same check on seconds since the epoch, which may be any number a sender sent
        (a datetime cannot even hold year 10000)."""
        earliest, latest = self.bounds(now)
        if epoch_seconds < earliest:
            return f"timestamp is more than {self.back.days} days in the past"
        if epoch_seconds > latest:
            return f"timestamp is more than {int(self.ahead.total_seconds() // 60)} minutes in the future"
        return None


DEFAULT_WINDOW = LateWindow()


@dataclass(frozen=True, slots=True)
class ClockTimes:
    """The time of the test clock of each customer on one, by customer id and by CRM account
    id: a clock's customers send usage in the clock's time, and their late window is its."""

    by_customer: Mapping[str, datetime] = field(default_factory=dict)
    by_crm_account: Mapping[str, datetime] = field(default_factory=dict)


_VALUE_AGGREGATIONS = frozenset({Aggregation.SUM, Aggregation.MAX, Aggregation.LATEST})


def value_problem(meter: Meter, has_value: bool, properties: Container[str]) -> str | None:
    """Sum, max and latest meters aggregate the event's ``value``; unique_count counts distinct
    values of the property named by the meter's ``value_property``; count needs neither.
    ``properties`` are the event's property names (or its properties)."""
    if meter.aggregation in _VALUE_AGGREGATIONS and not has_value:
        return f"meter {meter.event_name!r} aggregates {meter.aggregation.value}: value is required"
    if meter.aggregation is Aggregation.UNIQUE_COUNT and meter.value_property not in properties:
        return f"meter {meter.event_name!r} counts unique {meter.value_property!r}: that property is required"
    return None


def properties_problem(properties: Mapping[str, str]) -> str | None:
    if len(properties) > MAX_PROPERTIES:
        return f"at most {MAX_PROPERTIES} properties"
    for key, value in properties.items():
        if not key or len(key) > MAX_PROPERTY_KEY_LENGTH:
            return f"property keys must have 1 to {MAX_PROPERTY_KEY_LENGTH} characters"
        if len(value) > MAX_PROPERTY_VALUE_LENGTH:
            return f"property {key[:40]!r}: at most {MAX_PROPERTY_VALUE_LENGTH} characters"
    return None


@dataclass(frozen=True, slots=True)
class MeteredEvent:
    """An accepted event as aggregation sees it."""

    occurred_at: datetime
    properties: Mapping[str, str]
    value: Decimal | None = None
    received_order: int = 0


def matches(properties: Mapping[str, str], filters: Iterable[tuple[str, str]]) -> bool:
    return all(properties.get(key) == value for key, value in filters)


def aggregate(meter: Meter, events: Iterable[MeteredEvent]) -> Decimal:
    """The meter's quantity over ``events`` (already filtered to a customer, range and filters).

    ``latest`` takes the value of the event that happened last (ties: the one received last);
    ``unique_count`` counts distinct values of the meter's value property; an empty set of
    events aggregates to 0 for every kind.
    """
    items = list(events)
    if not items:
        return Decimal(0)
    match meter.aggregation:
        case Aggregation.COUNT:
            return Decimal(len(items))
        case Aggregation.SUM:
            return exact_sum(e.value or Decimal(0) for e in items)
        case Aggregation.MAX:
            return max(e.value or Decimal(0) for e in items)
        case Aggregation.UNIQUE_COUNT:
            name = meter.value_property
            return Decimal(len({e.properties[name] for e in items if name in e.properties}))
        case Aggregation.LATEST:
            last = max(items, key=lambda e: (e.occurred_at, e.received_order))
            return last.value or Decimal(0)


class Stored(enum.Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"  # the key is taken by an event with another payload
    UNKNOWN_CUSTOMER = "unknown_customer"
    OUTSIDE_CLOCK_WINDOW = "outside_clock_window"  # the customer's test clock is elsewhere in time


@dataclass
class UsageRows:
    """Column lists for one batch of events to store; row i of every list is event i."""

    keys: list[str] = field(default_factory=list)
    customer_ids: list[str] = field(default_factory=list)  # "" when named by crm_account_id
    crm_ids: list[str] = field(default_factory=list)  # "" when named by id
    meter_ids: list[str] = field(default_factory=list)
    micros: list[int] = field(default_factory=list)  # occurred_at, microseconds since the epoch
    properties: list[str] = field(default_factory=list)  # JSON objects as text
    values: list[str] = field(default_factory=list)  # "" for none

    def __len__(self) -> int:
        return len(self.keys)

    def add(
        self, key: str, customer_id: str, crm_id: str, meter_id: str, micros: int, properties: str, value: str
    ) -> None:
        self.keys.append(key)
        self.customer_ids.append(customer_id)
        self.crm_ids.append(crm_id)
        self.meter_ids.append(meter_id)
        self.micros.append(micros)
        self.properties.append(properties)
        self.values.append(value)

    def row(self, index: int) -> tuple[str, str, str, str, int, str, str]:
        return (
            self.keys[index], self.customer_ids[index], self.crm_ids[index], self.meter_ids[index],
            self.micros[index], self.properties[index], self.values[index],
        )  # fmt: skip

    @classmethod
    def of(cls, rows: Sequence[tuple[str, str, str, str, int, str, str]]) -> UsageRows:
        """Columns from rows, each laid out as ``add`` takes them."""
        if not rows:
            return cls()
        return cls(*(list(column) for column in zip(*rows, strict=True)))

    def extend(self, other: UsageRows) -> None:
        for mine, theirs in zip(self._columns(), other._columns(), strict=True):
            mine.extend(theirs)

    def select(self, indexes: Iterable[int]) -> UsageRows:
        """The rows at ``indexes``, in that order."""
        chosen = list(indexes)
        return UsageRows(*([column[i] for i in chosen] for column in self._columns()))

    def _columns(self) -> tuple[list[Any], ...]:
        return (
            self.keys, self.customer_ids, self.crm_ids, self.meter_ids, self.micros, self.properties,
            self.values,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class UsageTotal:
    group: str
    value: Decimal
    event_count: int
