"""Usage use cases against an in-memory store: per-event answers of a batch, group commit with
backpressure, single-event errors, and the checks of a usage summary (DESIGN.md §5).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from billing.domain.catalog import Aggregation, Catalog, Meter
from billing.domain.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from billing.domain.usage import MAX_BATCH_EVENTS, ClockTimes, LateWindow, Stored, UsageRows, UsageTotal
from rating.usecases import usage
from rating.usecases.usage import GroupCommitter, Outcome, Rejection, SummaryQuery

NOW = datetime(2025, 6, 15, 12, 0, 0, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- fakes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stamp:
    seconds: int
    nanos: int = 0


def _stamp(at: datetime) -> Stamp:
    seconds, rest = divmod(at - EPOCH, timedelta(seconds=1))
    return Stamp(seconds, rest // timedelta(microseconds=1) * 1000)


@dataclass(frozen=True)
class Event:
    """The attributes of billing.v1.UsageEvent that the use cases read."""

    idempotency_key: str = "key-1"
    customer: str = "customers/cus_1"
    crm_account_id: str = ""
    event_name: str = "api_call"
    timestamp: Stamp = field(default_factory=lambda: _stamp(NOW - timedelta(minutes=1)))
    properties: Mapping[str, str] = field(default_factory=lambda: {"channel": "sms"})
    value: str = "1"


class FakeUsageStore:
    """Keeps events by key like the dedupe table: same payload is a duplicate, another a conflict.

    ``gate``, while set to an unset event, holds every insert; ``fail`` makes inserts raise.
    """

    def __init__(self, customers: Mapping[str, str | None] | None = None) -> None:
        self.customers = dict(customers if customers is not None else {"cus_1": "crm-1", "cus_2": None})
        self.events: dict[str, tuple[Any, ...]] = {}
        self.inserts: list[UsageRows] = []
        self.gate: asyncio.Event | None = None
        self.fail: Exception | None = None
        self.rows_in_flight = 0
        self.most_rows_in_flight = 0
        self.cancelled: set[str] = set()
        self.queries: list[dict[str, Any]] = []
        self.totals: list[UsageTotal] = []

    async def insert(self, rows: UsageRows, window: LateWindow) -> list[Stored]:
        self.inserts.append(rows)
        self.rows_in_flight += len(rows)
        self.most_rows_in_flight = max(self.most_rows_in_flight, self.rows_in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.fail is not None:
                raise self.fail
            return [self._store(rows.row(index)) for index in range(len(rows))]
        finally:
            self.rows_in_flight -= len(rows)

    def _store(self, row: tuple[str, str, str, str, int, str, str]) -> Stored:
        key, customer_id, crm_id, meter_id, micros, properties, value = row
        resolved = customer_id if customer_id in self.customers else None
        if resolved is None and crm_id:
            resolved = next((c for c, crm in self.customers.items() if crm == crm_id), None)
        if resolved is None:
            return Stored.UNKNOWN_CUSTOMER
        payload = (
            resolved, meter_id, micros, json.loads(properties), D(value) if value else None,
        )  # fmt: skip
        if key not in self.events:
            self.events[key] = payload
            return Stored.ACCEPTED
        return Stored.DUPLICATE if self.events[key] == payload else Stored.CONFLICT

    async def clock_times(self, customer_ids: Sequence[str], crm_account_ids: Sequence[str]) -> ClockTimes:
        return ClockTimes()  # nobody is on a test clock here (tests/integration/api covers them)

    async def cancel(self, key: str) -> tuple[bool, datetime] | None:
        if key not in self.events:
            return None
        fresh = key not in self.cancelled
        self.cancelled.add(key)
        return fresh, EPOCH + timedelta(microseconds=self.events[key][2])

    async def aggregate(
        self,
        *,
        customer_id: str,
        meter: Meter,
        filters: Sequence[tuple[str, str]],
        start: datetime,
        end: datetime,
        group_by: str = "",
    ) -> list[UsageTotal]:
        self.queries.append(
            {"customer_id": customer_id, "meter": meter, "filters": filters, "start": start, "end": end,
             "group_by": group_by}
        )  # fmt: skip
        return self.totals


CALLS = Meter("meter_calls", "api_call", "API calls", Aggregation.SUM, dimensions=("channel", "model"))
MESSAGES = Meter("meter_messages", "message", "Messages", Aggregation.COUNT, dimensions=("channel",))
PEAK = Meter("meter_peak", "peak_seats", "Peak seats", Aggregation.MAX)
GAUGE = Meter("meter_gauge", "storage_gb", "Storage", Aggregation.LATEST)
CONVERSATIONS = Meter(
    "meter_conv", "conversation", "Conversations", Aggregation.UNIQUE_COUNT,
    value_property="conversation_id", dimensions=("outcome",),
)  # fmt: skip
ARCHIVED = Meter("meter_old", "legacy_call", "Legacy", Aggregation.COUNT, active=False)
LISTINGS = Meter("meter_listings", "property_listing", "Property listings", Aggregation.SUM)


class Catalogs:
    def __init__(self, *meters: Meter) -> None:
        self.snapshot = Catalog(version=1, meters={m.id: m for m in meters})

    def current(self) -> Catalog:
        return self.snapshot


CATALOG = Catalogs(CALLS, MESSAGES, PEAK, GAUGE, CONVERSATIONS, ARCHIVED, LISTINGS)


def _events(count: int, prefix: str = "key") -> list[Event]:
    return [Event(idempotency_key=f"{prefix}-{i}") for i in range(count)]


async def _record(store: FakeUsageStore, events: Sequence[Event]) -> usage.BatchResult:
    return await usage.record_batch(store, CATALOG, events, NOW)


# --- record_batch ---------------------------------------------------------------------------


async def test_a_valid_batch_is_stored_in_one_insert_with_the_columns_of_each_event() -> None:
    store = FakeUsageStore()
    at = NOW - timedelta(minutes=3, microseconds=250)
    events = [
        Event("k1", timestamp=_stamp(at), properties={"channel": "sms", "model": "m1"}, value="1.50"),
        Event("k2", customer="", crm_account_id="crm-1", event_name="message", properties={}, value=""),
    ]
    result = await _record(store, events)
    assert result.outcomes == [Outcome.ACCEPTED, Outcome.ACCEPTED]
    assert result.rejections == {}
    assert len(store.inserts) == 1
    rows = store.inserts[0]
    micros = _stamp(at).seconds * 1_000_000 + _stamp(at).nanos // 1000
    assert micros % 1_000_000 == 999_750  # the instant, to the microsecond
    assert rows.row(0) == (
        "k1",
        "cus_1",
        "",
        "meter_calls",
        micros,
        '{"channel":"sms","model":"m1"}',
        "1.50",
    )
    assert rows.row(1)[:4] == ("k2", "", "crm-1", "meter_messages")
    assert rows.row(1)[5:] == ("{}", "")


REJECTIONS = [
    ("unknown meter", {"event_name": "no_such_event"}, NotFound, "event_name"),
    ("archived meter", {"event_name": "legacy_call"}, FailedPrecondition, "event_name"),
    ("sum meter without value", {"value": ""}, InvalidArgument, "value"),
    ("max meter without value", {"event_name": "peak_seats", "value": ""}, InvalidArgument, "value"),
    ("latest meter without value", {"event_name": "storage_gb", "value": ""}, InvalidArgument, "value"),
    (
        "unique_count meter without its property",
        {"event_name": "conversation", "properties": {"outcome": "resolved"}},
        InvalidArgument,
        "properties",
    ),
    (
        "more than 35 days old",
        {"timestamp": _stamp(NOW - timedelta(days=35, microseconds=1))},
        FailedPrecondition,
        "timestamp",
    ),
    (
        "more than 5 minutes ahead",
        {"timestamp": _stamp(NOW + timedelta(minutes=5, microseconds=1))},
        FailedPrecondition,
        "timestamp",
    ),
    *[
        (
            f"nanos {nanos}",
            {"timestamp": Stamp(_stamp(NOW).seconds - 60, nanos)},
            InvalidArgument,
            "timestamp",
        )
        for nanos in [-1, 1_000_000_000]
    ],
    *[
        (f"malformed value {value!r}", {"value": value}, InvalidArgument, "value")
        for value in ["abc", "1,5", "1e3", ".5", "1.", "01", " 1", "1 ", "+1", "NaN", "Infinity", "0x10", "١"]
    ],
    ("value with 13 decimal places", {"value": "0.0000000000001"}, InvalidArgument, "value"),
    ("value with 19 integer digits", {"value": "1" + "0" * 18}, InvalidArgument, "value"),
    *[
        (f"negative value {value!r}", {"value": value}, InvalidArgument, "value")
        for value in ["-1", "-0.5", "-0"]
    ],
    *[
        (f"customer name {name!r}", {"customer": name}, InvalidArgument, "customer")
        for name in ["cus_1", "customers/", "customers/a b", "customers/cus_1/x", "customers/" + "x" * 65]
    ],
    ("no customer at all", {"customer": "", "crm_account_id": ""}, InvalidArgument, "customer"),
    ("empty key", {"idempotency_key": ""}, InvalidArgument, "idempotency_key"),
    ("129-character key", {"idempotency_key": "k" * 129}, InvalidArgument, "idempotency_key"),
    ("33 properties", {"properties": {f"p{i}": "v" for i in range(33)}}, InvalidArgument, "properties"),
    ("41-character property key", {"properties": {"p" * 41: "v"}}, InvalidArgument, "properties"),
    ("201-character property value", {"properties": {"channel": "v" * 201}}, InvalidArgument, "properties"),
]


@pytest.mark.parametrize(
    ("change", "error", "field_name"),
    [pytest.param(change, error, name, id=case) for case, change, error, name in REJECTIONS],
)
async def test_a_bad_event_is_rejected_with_its_reason_and_its_neighbours_are_still_stored(
    change: dict[str, Any], error: type[Exception], field_name: str
) -> None:
    store = FakeUsageStore()
    events = [Event("good-0"), replace(Event("bad-1"), **change), Event("good-2")]
    result = await _record(store, events)
    assert result.outcomes == [Outcome.ACCEPTED, Outcome.REJECTED, Outcome.ACCEPTED]
    assert list(result.rejections) == [1]
    rejection = result.rejections[1]
    assert (rejection.error, rejection.field) == (error, field_name)
    assert rejection.reason
    assert [len(rows) for rows in store.inserts] == [2]
    assert store.inserts[0].keys == ["good-0", "good-2"]


ACCEPTED_AT_THE_LIMIT = [
    ("exactly 35 days old", {"timestamp": _stamp(NOW - timedelta(days=35))}),
    ("exactly 5 minutes ahead", {"timestamp": _stamp(NOW + timedelta(minutes=5))}),
    ("128-character key", {"idempotency_key": "k" * 128}),
    ("32 properties", {"properties": {f"p{i}": "v" for i in range(32)}}),
    ("zero", {"value": "0"}),
    ("18 integer digits and 12 places", {"value": "9" * 18 + "." + "9" * 12}),
    ("64-character customer id", {"customer": "customers/" + "c" * 64}),
    ("crm account only", {"customer": "", "crm_account_id": "crm-1"}),
    ("count meter without a value", {"event_name": "message", "value": ""}),
    (
        "unique_count meter without a value",
        {"event_name": "conversation", "value": "", "properties": {"conversation_id": "c1"}},
    ),
]


@pytest.mark.parametrize("change", [pytest.param(change, id=case) for case, change in ACCEPTED_AT_THE_LIMIT])
async def test_an_event_at_a_limit_is_still_sent_to_the_store(change: dict[str, Any]) -> None:
    store = FakeUsageStore({"cus_1": "crm-1", "c" * 64: None})
    result = await _record(store, [replace(Event(), **change)])
    assert result.rejections == {}
    assert result.outcomes == [Outcome.ACCEPTED]


async def test_the_store_answers_become_outcomes_and_rejections_in_batch_order() -> None:
    store = FakeUsageStore()
    await _record(store, [Event("seen"), Event("taken", value="2")])
    result = await _record(
        store,
        [
            Event("new"),
            Event("seen"),
            Event("bad", value="-1"),
            Event("taken", value="3"),
            Event("stranger", customer="customers/cus_nobody"),
        ],
    )
    assert result.outcomes == [
        Outcome.ACCEPTED,
        Outcome.DUPLICATE,
        Outcome.REJECTED,
        Outcome.REJECTED,
        Outcome.REJECTED,
    ]
    assert (result.rejections[3].error, result.rejections[3].field) == (FailedPrecondition, "idempotency_key")
    assert (result.rejections[4].error, result.rejections[4].field) == (NotFound, "customer")
    assert sorted(result.rejections) == [2, 3, 4]
    counts = [result.count(outcome) for outcome in (Outcome.ACCEPTED, Outcome.DUPLICATE, Outcome.REJECTED)]
    assert counts == [1, 1, 3]


async def test_a_batch_of_only_bad_events_never_reaches_the_store() -> None:
    store = FakeUsageStore()
    result = await _record(store, [Event(value="x"), Event(event_name="nope")])
    assert result.outcomes == [Outcome.REJECTED, Outcome.REJECTED]
    assert store.inserts == []


@pytest.mark.parametrize("size", [0, MAX_BATCH_EVENTS + 1])
async def test_an_empty_or_oversized_batch_is_an_invalid_argument(size: int) -> None:
    store = FakeUsageStore()
    with pytest.raises(InvalidArgument) as caught:
        await _record(store, _events(size))
    assert [v.field for v in caught.value.violations] == ["events"]
    assert store.inserts == []


async def test_a_batch_of_exactly_the_maximum_is_stored() -> None:
    store = FakeUsageStore()
    result = await _record(store, _events(MAX_BATCH_EVENTS))
    assert result.count(Outcome.ACCEPTED) == 10_000
    assert [len(rows) for rows in store.inserts] == [10_000]


# Found while writing these tests: each of these fails a whole batch instead of one event.


@pytest.mark.parametrize("seconds", [253_402_300_800, -(10**12), 2**63 - 1])
async def test_a_timestamp_beyond_what_a_datetime_holds_is_rejected_alone(seconds: int) -> None:
    # Year 10000 and beyond: datetime.fromtimestamp raises ValueError or OSError in _check.
    store = FakeUsageStore()
    result = await _record(store, [Event("good-0"), Event("bad-1", timestamp=Stamp(seconds))])
    assert result.outcomes == [Outcome.ACCEPTED, Outcome.REJECTED]
    assert result.rejections[1].field == "timestamp"


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"idempotency_key": "key\x00"}, id="key"),
        pytest.param({"properties": {"channel": "sms\x00"}}, id="property value"),
        pytest.param({"properties": {"chan\x00nel": "sms"}}, id="property key"),
        pytest.param({"customer": "", "crm_account_id": "crm\x00"}, id="crm account"),
    ],
)
async def test_a_nul_character_which_postgresql_text_cannot_hold_is_rejected_alone(
    change: dict[str, Any],
) -> None:
    # asyncpg raises CharacterNotInRepertoireError / UntranslatableCharacterError for the whole
    # INSERT (see the report), so the use case must refuse such an event itself.
    store = FakeUsageStore()
    result = await _record(store, [Event("good-0"), replace(Event("bad-1"), **change)])
    assert result.outcomes == [Outcome.ACCEPTED, Outcome.REJECTED]
    assert result.rejections[1].error is InvalidArgument
    assert store.inserts[0].keys == ["good-0"]


async def test_a_missing_value_is_reported_on_the_value_field_whatever_the_meter_is_called() -> None:
    # The field is guessed from the reason's text; a meter named "property_listing" puts
    # "propert" into the value reason.
    result = await _record(FakeUsageStore(), [Event(event_name="property_listing", value="")])
    assert result.rejections[0] == Rejection(
        InvalidArgument, "value", "meter 'property_listing' aggregates sum: value is required"
    )


# --- GroupCommitter -------------------------------------------------------------------------


def _one(key: str, customer: str = "cus_1", value: str = "1") -> tuple[str, str, str, str, int, str, str]:
    return key, customer, "", "meter_calls", 1_750_000_000_000_000, "{}", value


async def test_concurrent_submits_are_committed_together_in_one_insert() -> None:
    store = FakeUsageStore()
    committer = GroupCommitter(store, max_delay=0.01)
    outcomes = await asyncio.gather(*(committer.submit(_one(f"k{i}")) for i in range(100)))
    assert outcomes == [Stored.ACCEPTED] * 100
    assert [len(rows) for rows in store.inserts] == [100]
    assert sorted(store.inserts[0].keys) == sorted(f"k{i}" for i in range(100))


async def test_each_caller_gets_the_outcome_of_its_own_event() -> None:
    store = FakeUsageStore()
    await store.insert(UsageRows.of([_one("seen")]), LateWindow())
    await store.insert(UsageRows.of([_one("taken", value="2")]), LateWindow())
    committer = GroupCommitter(store, max_delay=0.01)
    submits = {
        "new": _one("new"),
        "seen": _one("seen"),
        "taken": _one("taken", value="3"),
        "stranger": _one("stranger", customer="cus_nobody"),
        "new-2": _one("new-2"),
    }
    outcomes = await asyncio.gather(*(committer.submit(rows) for rows in submits.values()))
    assert dict(zip(submits, outcomes, strict=True)) == {
        "new": Stored.ACCEPTED,
        "seen": Stored.DUPLICATE,
        "taken": Stored.CONFLICT,
        "stranger": Stored.UNKNOWN_CUSTOMER,
        "new-2": Stored.ACCEPTED,
    }
    assert len(store.inserts) == 3  # two direct inserts, then one group


async def test_a_store_failure_reaches_every_waiting_caller_and_the_next_window_works_again() -> None:
    store = FakeUsageStore()
    store.fail = Unavailable("the database is unavailable; retry")
    committer = GroupCommitter(store, max_delay=0.005)
    results = await asyncio.gather(
        *(committer.submit(_one(f"k{i}")) for i in range(7)), return_exceptions=True
    )
    assert all(isinstance(r, Unavailable) for r in results), results
    assert len(store.inserts) == 1
    store.fail = None
    assert await asyncio.wait_for(committer.submit(_one("after")), 1) is Stored.ACCEPTED


async def test_a_full_window_is_committed_without_waiting_for_the_delay() -> None:
    store = FakeUsageStore()
    committer = GroupCommitter(store, max_delay=60, max_rows=10)
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(committer.submit(_one(f"k{i}")) for i in range(10))), 1
    )
    assert outcomes == [Stored.ACCEPTED] * 10


async def test_a_lone_event_is_committed_after_the_delay() -> None:
    store = FakeUsageStore()
    committer = GroupCommitter(store, max_delay=0.005, max_rows=1000)
    assert await asyncio.wait_for(committer.submit(_one("alone")), 1) is Stored.ACCEPTED


async def test_no_more_than_max_pending_callers_are_let_in_while_commits_are_slow() -> None:
    store = FakeUsageStore()
    store.gate = asyncio.Event()
    committer = GroupCommitter(store, max_delay=0.001, max_rows=1000, max_pending=3)
    callers = [asyncio.create_task(committer.submit(_one(f"k{i}"))) for i in range(10)]
    await asyncio.sleep(0.05)
    assert sum(len(rows) for rows in store.inserts) == 3, "callers beyond max_pending reached the store"
    assert not any(c.done() for c in callers)
    store.gate.set()
    outcomes = await asyncio.wait_for(asyncio.gather(*callers), 2)
    assert outcomes == [Stored.ACCEPTED] * 10
    assert store.most_rows_in_flight <= 3
    assert sum(len(rows) for rows in store.inserts) == 10


async def test_a_caller_that_gives_up_does_not_disturb_the_others() -> None:
    store = FakeUsageStore()
    store.gate = asyncio.Event()
    committer = GroupCommitter(store, max_delay=0.001)
    callers = [asyncio.create_task(committer.submit(_one(f"k{i}"))) for i in range(5)]
    await asyncio.sleep(0.02)
    callers[2].cancel()
    store.gate.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert isinstance(results[2], asyncio.CancelledError)
    assert [r for i, r in enumerate(results) if i != 2] == [Stored.ACCEPTED] * 4


# --- record_one -----------------------------------------------------------------------------


async def _record_one(store: FakeUsageStore, event: Event) -> Outcome:
    return await usage.record_one(GroupCommitter(store, max_delay=0.001), store, CATALOG, event, NOW)


async def test_a_single_event_is_accepted_then_a_duplicate() -> None:
    store = FakeUsageStore()
    assert await _record_one(store, Event("k")) is Outcome.ACCEPTED
    assert await _record_one(store, Event("k")) is Outcome.DUPLICATE
    assert await _record_one(store, Event("k", value="1.0")) is Outcome.DUPLICATE


@pytest.mark.parametrize(
    ("change", "error", "field_name"),
    [
        ({"event_name": "no_such_event"}, NotFound, "event.event_name"),
        ({"event_name": "legacy_call"}, FailedPrecondition, "event.event_name"),
        ({"timestamp": _stamp(NOW - timedelta(days=36))}, FailedPrecondition, "event.timestamp"),
        ({"timestamp": _stamp(NOW + timedelta(minutes=6))}, FailedPrecondition, "event.timestamp"),
        ({"value": "1.5.0"}, InvalidArgument, "event.value"),
        ({"value": ""}, InvalidArgument, "event.value"),
        ({"customer": "cus_1"}, InvalidArgument, "event.customer"),
        ({"idempotency_key": ""}, InvalidArgument, "event.idempotency_key"),
    ],
)
async def test_a_single_bad_event_raises_its_own_error_and_is_never_sent(
    change: dict[str, Any], error: type[Exception], field_name: str
) -> None:
    store = FakeUsageStore()
    with pytest.raises(error) as caught:
        await _record_one(store, replace(Event(), **change))
    assert type(caught.value) is error
    if isinstance(caught.value, InvalidArgument):
        assert [v.field for v in caught.value.violations] == [field_name]
    else:
        assert str(caught.value).startswith(f"{field_name}: ")
    assert store.inserts == []


async def test_a_single_event_for_an_unknown_customer_is_not_found() -> None:
    with pytest.raises(NotFound, match=r"^event\.customer: no such customer$"):
        await _record_one(FakeUsageStore(), Event(customer="customers/cus_nobody"))


async def test_a_single_event_reusing_a_key_with_another_payload_is_a_failed_precondition() -> None:
    store = FakeUsageStore()
    await _record_one(store, Event("k", value="1"))
    with pytest.raises(FailedPrecondition, match=r"^event\.idempotency_key: "):
        await _record_one(store, Event("k", value="2"))


async def test_a_single_event_sees_the_store_failure() -> None:
    store = FakeUsageStore()
    store.fail = Unavailable("the database is unavailable; retry")
    with pytest.raises(Unavailable):
        await _record_one(store, Event())


# --- cancel ---------------------------------------------------------------------------------


async def test_cancel_checks_the_key_and_says_whether_the_event_was_still_counting() -> None:
    store = FakeUsageStore()
    await _record(store, [Event("k")])
    first, at = await usage.cancel(store, "k")
    assert first is True
    assert at == NOW - timedelta(minutes=1)
    assert await usage.cancel(store, "k") == (False, at)
    with pytest.raises(NotFound):
        await usage.cancel(store, "never-sent")
    for bad in ["", "k" * 129]:
        with pytest.raises(InvalidArgument):
            await usage.cancel(store, bad)


# --- summarize ------------------------------------------------------------------------------


def _query(**fields: Any) -> SummaryQuery:
    values: dict[str, Any] = {
        "customer_id": "cus_1",
        "meter": "meter_calls",
        "filters": (("channel", "sms"),),
        "start": NOW - timedelta(days=30),
        "end": NOW,
        "group_by": "",
    }
    values.update(fields)
    return SummaryQuery(**values)


@pytest.mark.parametrize("meter", ["meter_calls", "api_call"])
async def test_a_summary_names_the_meter_by_id_or_event_name_and_returns_the_store_totals(meter: str) -> None:
    store = FakeUsageStore()
    store.totals = [UsageTotal("sms", D("4.5"), 3)]
    query = _query(meter=meter, group_by="model")
    assert await usage.summarize(store, CATALOG, query) == [UsageTotal("sms", D("4.5"), 3)]
    assert store.queries == [
        {"customer_id": "cus_1", "meter": CALLS, "filters": (("channel", "sms"),), "start": query.start,
         "end": query.end, "group_by": "model"}
    ]  # fmt: skip


async def test_a_summary_of_an_unknown_meter_is_not_found() -> None:
    with pytest.raises(NotFound):
        await usage.summarize(FakeUsageStore(), CATALOG, _query(meter="meter_nope"))


async def test_a_summary_may_group_by_the_property_a_unique_count_meter_counts() -> None:
    store = FakeUsageStore()
    await usage.summarize(
        store, CATALOG, _query(meter="conversation", filters=(), group_by="conversation_id")
    )
    assert len(store.queries) == 1


@pytest.mark.parametrize(
    ("fields", "bad_fields"),
    [
        ({"filters": (("channel", "sms"), ("colour", "red"))}, ["filters[1].key"]),
        ({"group_by": "colour"}, ["group_by"]),
        ({"end": NOW - timedelta(days=30)}, ["end_time"]),
        ({"end": NOW - timedelta(days=31)}, ["end_time"]),
        (
            {"filters": (("colour", "red"),), "group_by": "size", "end": NOW - timedelta(days=40)},
            ["filters[0].key", "group_by", "end_time"],
        ),
    ],
)
async def test_a_summary_with_bad_filters_group_or_range_names_every_bad_field(
    fields: dict[str, Any], bad_fields: list[str]
) -> None:
    store = FakeUsageStore()
    with pytest.raises(InvalidArgument) as caught:
        await usage.summarize(store, CATALOG, _query(**fields))
    assert [v.field for v in caught.value.violations] == bad_fields
    assert store.queries == []


async def test_a_summary_with_two_filters_on_one_property_is_refused() -> None:
    # The SQL turns filters into one jsonb object, so the second value silently replaces the
    # first (channel=whatsapp is summed), while the reference aggregation matches nothing.
    store = FakeUsageStore()
    with pytest.raises(InvalidArgument) as caught:
        await usage.summarize(store, CATALOG, _query(filters=(("channel", "sms"), ("channel", "whatsapp"))))
    assert [v.field for v in caught.value.violations] == ["filters[1].key"]
