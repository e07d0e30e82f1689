"""Usage use cases: record events (batched, streamed, or one at a time with group commit),
cancel them, and summarise them.

Events are read through ``EventLike``, which the wire message satisfies as it is: at 100,000
events a second, building an intermediate object per event would cost more than storing it.
"""

from __future__ import annotations

import asyncio
import enum
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from billing.domain.catalog import Aggregation, Catalog, Meter
from billing.domain.errors import FailedPrecondition, InvalidArgument, NotFound, Violations
from billing.domain.usage import (
    DEFAULT_WINDOW,
    MAX_BATCH_EVENTS,
    MAX_KEY_LENGTH,
    ClockTimes,
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
_CUSTOMER_NAME = re.compile(r"customers/([A-Za-z0-9_-]{1,64})")
_T = TypeVar("_T")


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


class CustomerClocks(Protocol):
    async def clock_times(self, customer_ids: Sequence[str], crm_account_ids: Sequence[str]) -> ClockTimes:
        """The clocks of those of these customers that are on a test clock (and a home for
        their events: usage partitions around each clock's time)."""
        ...


class UsageStore(CustomerClocks, Protocol):
    async def insert(self, rows: UsageRows, window: LateWindow) -> list[Stored]:
        """Store new events of ``rows``; a test clock's customer's event only within ``window``
        around its clock's time (read as the rows are stored)."""
        ...

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
    rows: list[_Row]
    positions: list[int]  # batch index of each row
    rejections: dict[int, Rejection]
    # Outside the window of the server's time: valid still for a customer on a test clock
    # whose time it is within (rejected unless ``_on_test_clocks`` finds so).
    out_of_window: list[int]


@dataclass(frozen=True, slots=True)
class _Batch:
    """What every event of one batch is checked against."""

    catalog: Catalog
    now: datetime
    window: LateWindow
    earliest: float  # seconds since the epoch
    latest: float


_Row = tuple[str, str, str, str, int, str, str]


def _prepare(events: Sequence[EventLike], catalog: Catalog, now: datetime, window: LateWindow) -> _Prepared:
    batch = _Batch(catalog, now, window, *window.bounds(now))
    prepared = _Prepared([], [], {}, [])
    for index, event in enumerate(events):
        checked = _check(event, batch)
        if isinstance(checked, Rejection):
            prepared.rejections[index] = checked
            if _out_of_window(checked):
                prepared.out_of_window.append(index)
        else:
            prepared.rows.append(checked)
            prepared.positions.append(index)
    return prepared


async def _on_test_clocks(
    clocks: CustomerClocks,
    events: Sequence[EventLike],
    prepared: _Prepared,
    catalog: Catalog,
    window: LateWindow,
) -> None:
    """Check again, against its test clock's time, each event outside the server time's window
    whose customer is on a test clock: a clock's customers live in the clock's time. Costs a
    query only for batches that have such events."""
    late = [events[index] for index in prepared.out_of_window]
    customer_ids = [_customer_id(e.customer) for e in late if e.customer]
    times = await clocks.clock_times(
        [c for c in customer_ids if c], [e.crm_account_id for e in late if not e.customer]
    )
    for index, event in zip(prepared.out_of_window, late, strict=True):
        if event.customer:
            customer_id = _customer_id(event.customer)
            clock_now = times.by_customer.get(customer_id) if customer_id else None
        else:
            clock_now = times.by_crm_account.get(event.crm_account_id)
        if clock_now is None:
            continue
        checked = _check(event, _Batch(catalog, clock_now, window, *window.bounds(clock_now)))
        if isinstance(checked, Rejection):
            prepared.rejections[index] = checked  # now against the clock's time
        else:
            del prepared.rejections[index]
            prepared.rows.append(checked)
            prepared.positions.append(index)


def _out_of_window(rejection: Rejection) -> bool:
    return rejection.field == "timestamp" and rejection.error is FailedPrecondition


def _check(event: EventLike, batch: _Batch) -> Rejection | _Row:
    """The event as a row to store, or why it cannot be stored (the first problem found)."""
    key = event.idempotency_key
    if not key or len(key) > MAX_KEY_LENGTH:
        return Rejection(InvalidArgument, "idempotency_key", f"1 to {MAX_KEY_LENGTH} characters")
    customer = event.customer
    crm_account_id = "" if customer else event.crm_account_id
    if not customer and not crm_account_id:
        return Rejection(InvalidArgument, "customer", "set customer or crm_account_id")
    customer_id = _customer_id(customer) if customer else ""
    if customer_id is None:
        return Rejection(InvalidArgument, "customer", "must look like customers/{id}")
    meter = batch.catalog.meter_for_event(event.event_name)
    if meter is None:
        return Rejection(NotFound, "event_name", f"no meter for event {event.event_name[:60]!r}")
    if not meter.active:
        return Rejection(FailedPrecondition, "event_name", f"meter {meter.event_name!r} is archived")
    stamp = event.timestamp
    seconds, nanos = stamp.seconds, stamp.nanos
    if not 0 <= nanos < 1_000_000_000:
        return Rejection(InvalidArgument, "timestamp", "nanos must be 0 to 999,999,999")
    at = seconds + nanos / 1e9
    if not batch.earliest <= at <= batch.latest:
        return Rejection(FailedPrecondition, "timestamp", batch.window.problem_at(at, batch.now) or "")
    value = event.value
    if value and not _is_value(value):
        return Rejection(InvalidArgument, "value", "must be a non-negative decimal such as '12.5'")
    properties = _properties(event.properties)
    if properties.problem is not None:
        return Rejection(InvalidArgument, "properties", properties.problem)
    problem = value_problem(meter, bool(value), properties.names)
    if problem is not None:
        field = "properties" if meter.aggregation is Aggregation.UNIQUE_COUNT else "value"
        return Rejection(InvalidArgument, field, problem)
    # PostgreSQL text cannot hold NUL; one such event would fail the whole batch's insert.
    nul = (
        "idempotency_key" if "\x00" in key
        else "crm_account_id" if "\x00" in crm_account_id
        else "properties" if properties.has_nul
        else ""
    )  # fmt: skip
    if nul:
        return Rejection(InvalidArgument, nul, "must not contain NUL characters")
    micros = seconds * 1_000_000 + nanos // 1000
    return key, customer_id, crm_account_id, meter.id, micros, properties.json, value


# NOTE: checking a property map, a value or a customer reference is a pure function of it, and
# senders repeat a few of each (channels, outcomes, models; their customers): remembering the
# answers halves the Python cost of an event (bench/ingest.py). Each memo is emptied when full,
# and long strings are never kept, so a hostile sender cannot grow them.
_MEMO_ENTRIES = 4096
_MEMO_MAX_CHARS = 128
_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=True)  # one text per map, whatever its order


@dataclass(frozen=True, slots=True)
class _Properties:
    json: str
    problem: str | None
    names: frozenset[str]
    has_nul: bool


_properties_memo: dict[frozenset[tuple[str, str]], _Properties] = {}
_customer_memo: dict[str, str] = {}
_value_memo: dict[str, bool] = {}


def _remember(memo: dict[Any, Any], key: Any, answer: _T) -> _T:
    if len(memo) >= _MEMO_ENTRIES:
        memo.clear()
    memo[key] = answer
    return answer


def _properties(properties: Mapping[str, str]) -> _Properties:
    # Not properties.items(): on a protobuf map that is the slow, pure-Python ItemsView.
    items = frozenset([(name, properties[name]) for name in properties])
    known = _properties_memo.get(items)
    if known is not None:
        return known
    plain = dict(items)
    checked = _Properties(
        _JSON.encode(plain),
        properties_problem(plain),
        frozenset(plain),
        any("\x00" in name or "\x00" in value for name, value in items),
    )
    if sum(len(name) + len(value) for name, value in items) > _MEMO_MAX_CHARS * 4:
        return checked
    return _remember(_properties_memo, items, checked)


def _customer_id(reference: str) -> str | None:
    """The id in ``customers/{id}``; None if ``reference`` is not such a name."""
    known = _customer_memo.get(reference)
    if known is None:
        match = _CUSTOMER_NAME.fullmatch(reference)
        known = match.group(1) if match else ""
        if len(reference) <= _MEMO_MAX_CHARS:
            _remember(_customer_memo, reference, known)
    return known or None


def _is_value(text: str) -> bool:
    known = _value_memo.get(text)
    if known is None:
        known = _VALUE.fullmatch(text) is not None
        if len(text) <= _MEMO_MAX_CHARS:
            _remember(_value_memo, text, known)
    return known


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
    snapshot = catalog.current()
    prepared = _prepare(events, snapshot, now, window)
    if prepared.out_of_window:
        await _on_test_clocks(store, events, prepared, snapshot, window)
    stored = await store.insert(UsageRows.of(prepared.rows), window) if prepared.rows else []
    return _answer(prepared, stored, len(events))


def _answer(prepared: _Prepared, stored: Sequence[Stored], size: int) -> BatchResult:
    result = BatchResult([Outcome.REJECTED] * size, dict(prepared.rejections))
    for index, outcome in zip(prepared.positions, stored, strict=True):
        answer = _STORED_ANSWERS[outcome]
        if isinstance(answer, Rejection):
            result.rejections[index] = answer
        else:
            result.outcomes[index] = answer
    return result


_STORED_ANSWERS: dict[Stored, Outcome | Rejection] = {
    Stored.ACCEPTED: Outcome.ACCEPTED,
    Stored.DUPLICATE: Outcome.DUPLICATE,
    Stored.CONFLICT: Rejection(
        FailedPrecondition, "idempotency_key", "this key was already used for an event with another payload"
    ),
    Stored.UNKNOWN_CUSTOMER: Rejection(NotFound, "customer", "no such customer"),
    Stored.OUTSIDE_CLOCK_WINDOW: Rejection(
        FailedPrecondition,
        "timestamp",
        "timestamp is outside the late-event window around the customer's test clock time",
    ),
}


class GroupCommitter:
    """Turns concurrent single-event calls into one insert every few milliseconds.

    Each caller waits for the commit that contains its event, so an acknowledgement still means
    committed. ``max_pending`` bounds memory: past it, callers wait for room (backpressure).
    A window closes ``max_delay`` after its first event or at ``max_rows`` events; the next one
    opens at once, and its insert may overlap the previous one's (on another connection).
    """

    def __init__(
        self,
        store: UsageStore,
        *,
        window: LateWindow = DEFAULT_WINDOW,
        max_delay: float = 0.002,
        max_rows: int = 1000,
        max_pending: int = 10_000,
    ) -> None:
        self._store = store
        self.window = window
        self._max_delay = max_delay
        self._max_rows = max_rows
        self._room = asyncio.Semaphore(max_pending)
        self._rows: list[_Row] = []
        self._waiters: list[asyncio.Future[Stored]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._commits: set[asyncio.Task[None]] = set()  # the loop keeps only weak references

    async def submit(self, row: _Row) -> Stored:
        """Store one row together with others; returns what became of it."""
        async with self._room:
            loop = asyncio.get_running_loop()
            future: asyncio.Future[Stored] = loop.create_future()
            self._rows.append(row)
            self._waiters.append(future)
            if len(self._rows) >= self._max_rows:
                self._flush()
            elif self._timer is None:
                self._timer = loop.call_later(self._max_delay, self._flush)
            return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        rows, waiters = UsageRows.of(self._rows), self._waiters
        self._rows, self._waiters = [], []
        commit = asyncio.create_task(self._commit(rows, waiters))
        self._commits.add(commit)
        commit.add_done_callback(self._commits.discard)

    async def _commit(self, rows: UsageRows, waiters: list[asyncio.Future[Stored]]) -> None:
        try:
            outcomes = await self._store.insert(rows, self.window)
        except Exception as error:
            for future in waiters:
                if not future.done():  # a caller that gave up (deadline) cancelled its future
                    future.set_exception(error)
            return
        for future, outcome in zip(waiters, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)


async def record_one(
    committer: GroupCommitter,
    clocks: CustomerClocks,
    catalog: CatalogSource,
    event: EventLike,
    now: datetime,
) -> Outcome:
    """Store one event through group commit; raise the error a rejected event deserves."""
    snapshot = catalog.current()
    window = committer.window
    checked = _check(event, _Batch(snapshot, now, window, *window.bounds(now)))
    if isinstance(checked, Rejection) and _out_of_window(checked):
        prepared = _Prepared([], [], {0: checked}, [0])
        await _on_test_clocks(clocks, [event], prepared, snapshot, window)
        checked = prepared.rows[0] if prepared.rows else prepared.rejections[0]
    if isinstance(checked, Rejection):
        raise _error(checked)
    answer = _STORED_ANSWERS[await committer.submit(checked)]
    if isinstance(answer, Rejection):
        raise _error(answer)
    return answer


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


@dataclass(frozen=True, slots=True)
class SummaryRequest:
    """A summary asked for: a query whose range may be left to the open billing period."""

    customer_id: str
    meter: str
    filters: tuple[tuple[str, str], ...]
    group_by: str
    range: tuple[datetime, datetime] | None  # None: the open billing period
    subscription_id: str | None  # whose open period; None: the customer's only live one

    def query(self, start: datetime, end: datetime) -> SummaryQuery:
        return SummaryQuery(self.customer_id, self.meter, self.filters, start, end, self.group_by)


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
