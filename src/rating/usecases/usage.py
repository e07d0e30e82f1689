"""Usage use cases: record events (batched, streamed, or one at a time with group commit),
cancel them, and summarise them.

Events are read through ``EventLike``, which the wire message satisfies as it is: at 100,000
events a second, building an intermediate object per event would cost more than storing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from billing.domain.catalog import Aggregation, Catalog, Meter
from billing.domain.errors import FailedPrecondition, InvalidArgument, NotFound, Violations
from billing.domain.usage import (
    MAX_BATCH_EVENTS,
    MAX_KEY_LENGTH,
    LateWindow,
    Stored,
    UsageRows,
    UsageTotal,
    properties_problem,
    value_problem,
)
from rating.usecases.ports import CatalogSource

# A non-negative decimal with at most 18 integer digits and 12 decimal places; usage is never
# negative (a correction is a cancellation).
_VALUE = re.compile(r"(0|[1-9][0-9]{0,17})(\.[0-9]{1,12})?")
DEFAULT_WINDOW = LateWindow()
_CUSTOMER_NAME = re.compile(r"customers/([A-Za-z0-9_-]{1,64})")


class TimestampLike(Protocol):
    @property
    def seconds(self) -> int: ...

    @property
    def nanos(self) -> int: ...


class EventLike(Protocol):
    @property
    def idempotency_key(self) -> str: ...

    @property
    def customer(self) -> str: ...

    @property
    def crm_account_id(self) -> str: ...

    @property
    def event_name(self) -> str: ...

    @property
    def timestamp(self) -> TimestampLike: ...

    @property
    def properties(self) -> Mapping[str, str]: ...

    @property
    def value(self) -> str: ...


class UsageStore(Protocol):
    async def insert(self, rows: UsageRows) -> list[Stored]: ...

    async def cancel(self, key: str) -> tuple[bool, datetime] | None: ...

    async def aggregate(
        self,
        *,
        customer_id: str,
        meter: Meter,
        filters: Sequence[tuple[str, str]],
        start: datetime,
        end: datetime,
        group_by: str = "",
    ) -> list[UsageTotal]: ...


class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why one event was not stored: the error it alone would have raised, and its field."""

    error: type[InvalidArgument] | type[NotFound] | type[FailedPrecondition]
    field: str
    reason: str


@dataclass
class BatchResult:
    outcomes: list[Outcome]
    rejections: dict[int, Rejection] = field(default_factory=dict)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for o in self.outcomes if o is outcome)


@dataclass
class _Prepared:
    rows: UsageRows
    positions: list[int]  # batch index of each row
    rejections: dict[int, Rejection]


def _prepare(events: Sequence[EventLike], catalog: Catalog, now: datetime, window: LateWindow) -> _Prepared:
    prepared = _Prepared(UsageRows(), [], {})
    for index, event in enumerate(events):
        rejection, meter_id, properties = _check(event, catalog, now, window)
        if rejection is not None:
            prepared.rejections[index] = rejection
            continue
        stamp = event.timestamp
        prepared.rows.add(
            event.idempotency_key, _customer_id(event.customer), event.crm_account_id, meter_id,
            stamp.seconds, stamp.nanos, properties, event.value,
        )  # fmt: skip
        prepared.positions.append(index)
    return prepared


def _check(
    event: EventLike, catalog: Catalog, now: datetime, window: LateWindow
) -> tuple[Rejection | None, str, str]:
    key = event.idempotency_key
    if not key or len(key) > MAX_KEY_LENGTH:
        return Rejection(InvalidArgument, "idempotency_key", f"1 to {MAX_KEY_LENGTH} characters"), "", ""
    if not event.customer and not event.crm_account_id:
        return Rejection(InvalidArgument, "customer", "set customer or crm_account_id"), "", ""
    if event.customer and _CUSTOMER_NAME.fullmatch(event.customer) is None:
        return Rejection(InvalidArgument, "customer", "must look like customers/{id}"), "", ""
    meter = catalog.meter_for_event(event.event_name)
    if meter is None:
        return Rejection(NotFound, "event_name", f"no meter for event {event.event_name[:60]!r}"), "", ""
    if not meter.active:
        return Rejection(FailedPrecondition, "event_name", f"meter {meter.event_name!r} is archived"), "", ""
    stamp = event.timestamp
    late = window.problem_at(stamp.seconds + stamp.nanos / 1e9, now)
    if late is not None:
        return Rejection(FailedPrecondition, "timestamp", late), "", ""
    if event.value and _VALUE.fullmatch(event.value) is None:
        return Rejection(InvalidArgument, "value", "must be a non-negative decimal such as '12.5'"), "", ""
    properties = dict(event.properties)
    problem = properties_problem(properties)
    if problem is not None:
        return Rejection(InvalidArgument, "properties", problem), "", ""
    problem = value_problem(meter, bool(event.value), properties)
    if problem is not None:
        field = "properties" if meter.aggregation is Aggregation.UNIQUE_COUNT else "value"
        return Rejection(InvalidArgument, field, problem), "", ""
    nul = _nul_field(key, event.crm_account_id, properties)
    if nul:
        # PostgreSQL text cannot hold NUL; one such event would fail the whole batch's insert.
        return Rejection(InvalidArgument, nul, "must not contain NUL characters"), "", ""
    return None, meter.id, json.dumps(properties, separators=(",", ":"))


def _nul_field(key: str, crm_account_id: str, properties: Mapping[str, str]) -> str:
    if "\x00" in key:
        return "idempotency_key"
    if "\x00" in crm_account_id:
        return "crm_account_id"
    if any("\x00" in name or "\x00" in value for name, value in properties.items()):
        return "properties"
    return ""


def _customer_id(reference: str) -> str:
    return reference[len("customers/") :] if reference else ""


async def record_batch(
    store: UsageStore,
    catalog: CatalogSource,
    events: Sequence[EventLike],
    now: datetime,
    window: LateWindow = DEFAULT_WINDOW,
) -> BatchResult:
    """Store the valid events of one batch in one statement and answer for every event."""
    if not events or len(events) > MAX_BATCH_EVENTS:
        raise InvalidArgument.single("events", f"send 1 to {MAX_BATCH_EVENTS} events per batch")
    prepared = _prepare(events, catalog.current(), now, window)
    stored = await store.insert(prepared.rows) if prepared.rows.keys else []
    return _answer(prepared, stored, len(events))


def _answer(prepared: _Prepared, stored: Sequence[Stored], size: int) -> BatchResult:
    result = BatchResult([Outcome.REJECTED] * size, dict(prepared.rejections))
    for index, outcome in zip(prepared.positions, stored, strict=True):
        match outcome:
            case Stored.ACCEPTED:
                result.outcomes[index] = Outcome.ACCEPTED
            case Stored.DUPLICATE:
                result.outcomes[index] = Outcome.DUPLICATE
            case Stored.CONFLICT:
                result.rejections[index] = _CONFLICT
            case Stored.UNKNOWN_CUSTOMER:
                result.rejections[index] = Rejection(NotFound, "customer", "no such customer")
    return result


_CONFLICT = Rejection(
    FailedPrecondition, "idempotency_key", "this key was already used for an event with another payload"
)


class GroupCommitter:
    """Turns concurrent single-event calls into one insert every few milliseconds.

    Each caller waits for the commit that contains its event, so an acknowledgement still means
    committed. ``max_pending`` bounds memory: past it, callers wait for room (backpressure).
    """

    def __init__(
        self, store: UsageStore, *, max_delay: float = 0.002, max_rows: int = 1000, max_pending: int = 10_000
    ) -> None:
        self._store = store
        self._max_delay = max_delay
        self._max_rows = max_rows
        self._room = asyncio.Semaphore(max_pending)
        self._pending: list[tuple[UsageRows, asyncio.Future[Stored]]] = []
        self._full = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, rows: UsageRows) -> Stored:
        """Store a one-row batch together with others; returns what became of the row."""
        async with self._room:
            future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
            self._pending.append((rows, future))
            if self._flusher is None:
                self._flusher = asyncio.create_task(self._flush_soon())
            elif len(self._pending) >= self._max_rows:
                self._full.set()
            return await future

    async def _flush_soon(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._full.wait(), self._max_delay)
        self._full.clear()
        batch, self._pending = self._pending, []
        # Calls arriving from now on open the next window; its insert may overlap this one.
        self._flusher = None
        rows = UsageRows()
        for one, _ in batch:
            rows.extend(one)
        try:
            outcomes = await self._store.insert(rows)
        except Exception as error:
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)


async def record_one(
    committer: GroupCommitter,
    catalog: CatalogSource,
    event: EventLike,
    now: datetime,
    window: LateWindow = DEFAULT_WINDOW,
) -> Outcome:
    """Store one event through group commit; raise the error a rejected event deserves."""
    prepared = _prepare([event], catalog.current(), now, window)
    if 0 in prepared.rejections:
        raise _error(prepared.rejections[0])
    result = _answer(prepared, [await committer.submit(prepared.rows)], 1)
    if 0 in result.rejections:
        raise _error(result.rejections[0])
    return result.outcomes[0]


def _error(rejection: Rejection) -> Exception:
    field = f"event.{rejection.field}"
    if rejection.error is InvalidArgument:
        return InvalidArgument.single(field, rejection.reason)
    if rejection.error is NotFound:
        return NotFound(f"{field}: {rejection.reason}")
    return FailedPrecondition(f"{field}: {rejection.reason}")


async def cancel(store: UsageStore, key: str) -> tuple[bool, datetime]:
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidArgument.single("idempotency_key", f"1 to {MAX_KEY_LENGTH} characters")
    if "\x00" in key:  # no stored key has one, and PostgreSQL text cannot hold it
        raise InvalidArgument.single("idempotency_key", "must not contain NUL characters")
    found = await store.cancel(key)
    if found is None:
        raise NotFound(f"no usage event with idempotency key {key[:60]!r}")
    return found


@dataclass(frozen=True, slots=True)
class SummaryQuery:
    customer_id: str
    meter: str  # id or event name
    filters: tuple[tuple[str, str], ...]
    start: datetime
    end: datetime
    group_by: str = ""


async def summarize(store: UsageStore, catalog: CatalogSource, query: SummaryQuery) -> list[UsageTotal]:
    snapshot = catalog.current()
    meter = snapshot.meters.get(query.meter) or snapshot.meter_for_event(query.meter)
    if meter is None:
        raise NotFound(f"meter: no meter {query.meter[:60]!r}")
    errors = Violations()
    seen: set[str] = set()
    for index, (key, _) in enumerate(query.filters):
        if key not in meter.dimensions:
            errors.add(f"filters[{index}].key", f"meter {meter.event_name!r} has no dimension {key!r}")
        elif key in seen:
            errors.add(f"filters[{index}].key", f"a second filter on {key!r} could never match")
        seen.add(key)
    if query.group_by and query.group_by not in (*meter.dimensions, meter.value_property):
        errors.add("group_by", f"meter {meter.event_name!r} has no dimension {query.group_by!r}")
    if query.end <= query.start:
        errors.add("end_time", "must be after start_time")
    errors.raise_if_any()
    totals = await store.aggregate(
        customer_id=query.customer_id, meter=meter, filters=query.filters, start=query.start, end=query.end,
        group_by=query.group_by,
    )  # fmt: skip
    if not totals and not query.group_by:
        return [UsageTotal("", Decimal(0), 0)]  # nothing used is a quantity of 0, not no answer
    return totals
