"""Usage ingest under a hostile sender and a flaky database, through the real server on loopback.

Issue 4, "Reliability test": an acknowledged event is never lost, a retried event is never
counted twice, and a key reused with another payload is refused. The tests keep their own
oracle (each acknowledged key and the payload it was acknowledged with) and hold both the
database and GetUsageSummary to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from billing.domain.errors import Unavailable
from billing.domain.usage import LateWindow, UsageRows
from billing.store.database import connect
from billing.store.usage import PostgresUsageStore
from billing.v1 import catalog_pb2 as cpb
from billing.v1 import catalog_pb2_grpc, customer_pb2_grpc, usage_pb2_grpc
from billing.v1 import customer_pb2 as cust
from billing.v1 import usage_pb2 as pb
from tests.integration.api.auth import authorized_channel, issue
from tests.integration.api.rpc import request_id

SEED = 20_251_104
CALLS = 100_000
CUSTOMERS = 300
IN_FLIGHT = 160
# Several HTTP/2 connections, as several senders would open: one connection caps the rate.
CONNECTIONS = 4
REPLAY_SHARE = 0.30
CONCURRENT_SHARE = 0.05
CHANGED_SHARE = 0.02
SHORT_DEADLINE_SHARE = 0.05
SHORT_DEADLINE_MS = (2, 20)
# Replays and payload changes aim at acknowledged events, so the run opens with fresh ones.
WARM_UP_EVENTS = 2_000
MAX_ATTEMPTS = 40

RETRYABLE = frozenset({grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE})
OK = grpc.StatusCode.OK
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
CHANNELS = ("whatsapp", "email", "sms")

Totals = dict[tuple[str, str], tuple[Decimal, int]]  # (customer id, meter id) -> (quantity, events)


# --- a server of its own, customers and two meters ----------------------------------------------

# The server runs in a process of its own, as in production: sender and server then get a core
# each (sharing one event loop, 20,000 calls took 20-30 % longer on this 2-core machine).
_SERVER = """
import asyncio, os, signal, sys
from rating.server import ServerConfig, start_server

async def main(url, port_fd):
    config = ServerConfig(port=0, catalog_poll_seconds=0.1, health_poll_seconds=0.5, grace_seconds=2)
    server = await start_server(url, config)
    os.write(port_fd, b"%d\\n" % server.port)
    os.close(port_fd)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(config.grace_seconds)

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


@contextlib.asynccontextmanager
async def _server_process(url: str) -> AsyncIterator[int]:
    """A rating server (``rating.server.start_server``) in a child process; yields its port."""
    read_end, write_end = os.pipe()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _SERVER, url, str(write_end), pass_fds=(write_end,)
    )
    os.close(write_end)
    try:
        with os.fdopen(read_end, "rb") as port_pipe:
            line = await asyncio.wait_for(asyncio.to_thread(port_pipe.readline), timeout=30)
        assert line, f"the server process exited with {await process.wait()}"
        yield int(line)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                process.kill()
                await process.wait()


@contextlib.asynccontextmanager
async def _server_and_channels(url: str, count: int = 1) -> AsyncIterator[list[grpc.aio.Channel]]:
    token = await issue(url, f"reliability-{uuid.uuid4().hex[:8]}", ["billing:admin"])
    async with _server_process(url) as port:
        # A subchannel pool of its own per channel, or they would share one connection.
        channels = [
            authorized_channel(f"127.0.0.1:{port}", token, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(count)
        ]
        try:
            yield channels
        finally:
            for channel in channels:
                await channel.close()


@dataclass(frozen=True)
class World:
    customers: list[str]  # "customers/{id}"
    sum_event: str
    count_event: str
    meter_ids: dict[str, str]  # event name -> meter id


async def _create_world(channel: grpc.aio.Channel, customers: int) -> World:
    customer_stub = customer_pb2_grpc.CustomerServiceStub(channel)
    catalog_stub = catalog_pb2_grpc.CatalogServiceStub(channel)
    created = await asyncio.gather(
        *(
            customer_stub.CreateCustomer(
                cust.CreateCustomerRequest(
                    customer=cust.Customer(display_name=f"Reliable {n}", currency="USD"),
                    request_id=request_id(),
                )
            )
            for n in range(customers)
        )
    )
    meters = {}
    for aggregation, value_property in ((cpb.AGGREGATION_SUM, "minutes"), (cpb.AGGREGATION_COUNT, "")):
        response = await catalog_stub.CreateMeter(
            cpb.CreateMeterRequest(
                meter=cpb.Meter(
                    event_name=f"reliability.{uuid.uuid4().hex[:10]}",
                    display_name="Reliability",
                    aggregation=aggregation,
                    value_property=value_property,
                    dimensions=("channel",),
                ),
                request_id=request_id(),
            )
        )
        meters[aggregation] = response.meter
    world = World(
        customers=[c.customer.name for c in created],
        sum_event=meters[cpb.AGGREGATION_SUM].event_name,
        count_event=meters[cpb.AGGREGATION_COUNT].event_name,
        meter_ids={m.event_name: m.name.removeprefix("meters/") for m in meters.values()},
    )
    await _meters_served(usage_pb2_grpc.UsageServiceStub(channel), world)
    return world


async def _meters_served(stub: usage_pb2_grpc.UsageServiceStub, world: World) -> None:
    """Wait until the server's catalog snapshot (which it polls) knows both meters."""
    now = datetime.now(UTC)
    started = time.monotonic()
    for event_name in (world.sum_event, world.count_event):
        request = pb.GetUsageSummaryRequest(
            customer=world.customers[0],
            meter=event_name,
            start_time=_stamp(now - timedelta(hours=1)),
            end_time=_stamp(now),
        )
        while True:
            try:
                await stub.GetUsageSummary(request)
                break
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.NOT_FOUND or time.monotonic() - started > 5:
                    raise
            await asyncio.sleep(0.02)


def _stamp(at: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp


def _new_event(rng: random.Random, world: World, key: str, *, sum_meter: bool) -> pb.UsageEvent:
    at = datetime.now(UTC) - timedelta(seconds=rng.uniform(1, 3600))
    return pb.UsageEvent(
        idempotency_key=key,
        customer=rng.choice(world.customers),
        event_name=world.sum_event if sum_meter else world.count_event,
        timestamp=_stamp(at),
        properties={"channel": rng.choice(CHANNELS)},
        value=f"{rng.randint(0, 5000)}.{rng.randint(0, 999):03d}" if sum_meter else "",
    )


def _with_another_value(event: pb.UsageEvent) -> pb.UsageEvent:
    changed = pb.UsageEvent()
    changed.CopyFrom(event)
    changed.value = str(Decimal(event.value) + 1)
    return changed


# --- the oracle ----------------------------------------------------------------------------------


@dataclass
class Oracle:
    """What the sender saw: every answer, and the payload each key was first acknowledged with."""

    acknowledged: dict[str, pb.UsageEvent] = field(default_factory=dict)
    # Answers that said "stored now" rather than "duplicate", per key: never more than one.
    accepted_answers: Counter[str] = field(default_factory=Counter)
    # Keys acknowledged for two different payloads: must stay empty.
    conflicting_acks: list[str] = field(default_factory=list)
    refused: list[pb.UsageEvent] = field(default_factory=list)  # answered FAILED_PRECONDITION
    final: Counter[grpc.StatusCode] = field(default_factory=Counter)  # one per call
    attempts: Counter[grpc.StatusCode] = field(default_factory=Counter)  # one per try
    unexpected: list[tuple[str, grpc.StatusCode, str]] = field(default_factory=list)
    # Acknowledged events for replays to aim at; SUM ones not yet changed, for payload changes.
    replayable: list[pb.UsageEvent] = field(default_factory=list)
    changeable: list[pb.UsageEvent] = field(default_factory=list)

    def acknowledge(self, event: pb.UsageEvent, duplicate: bool, *, sum_meter: bool) -> None:
        key = event.idempotency_key
        if not duplicate:
            self.accepted_answers[key] += 1
        first = self.acknowledged.get(key)
        if first is None:
            self.acknowledged[key] = event
            self.replayable.append(event)
            if sum_meter:
                self.changeable.append(event)
        elif first != event:
            self.conflicting_acks.append(key)

    def refused_replays(self) -> list[str]:
        """Keys refused although the payload sent was exactly the acknowledged one."""
        return [e.idempotency_key for e in self.refused if self.acknowledged.get(e.idempotency_key) == e]

    def totals(self, meter_ids: dict[str, str]) -> Totals:
        totals: Totals = {}
        for event in self.acknowledged.values():
            slot = (event.customer.removeprefix("customers/"), meter_ids[event.event_name])
            total, count = totals.get(slot, (Decimal(0), 0))
            totals[slot] = (total + Decimal(event.value or "0"), count + 1)
        return totals


def _take(rng: random.Random, pool: list[pb.UsageEvent]) -> pb.UsageEvent:
    index = rng.randrange(len(pool))
    pool[index], pool[-1] = pool[-1], pool[index]
    return pool.pop()


async def _record_until_definite(
    stub: usage_pb2_grpc.UsageServiceStub,
    event: pb.UsageEvent,
    deadline: float | None,
    oracle: Oracle,
    *,
    sum_meter: bool,
) -> grpc.StatusCode:
    """Send ``event`` until the answer is neither DEADLINE_EXCEEDED nor UNAVAILABLE.

    The deadline grows fourfold on each retry: a 2 ms deadline on a busy server could expire
    forever, and the point is that the *retry* of a call that timed out is answered correctly.
    """
    request = pb.RecordUsageRequest(event=event)
    for _ in range(MAX_ATTEMPTS):
        try:
            answer = await stub.RecordUsage(request, timeout=deadline)
        except grpc.aio.AioRpcError as error:
            code = error.code()
            oracle.attempts[code] += 1
            if code in RETRYABLE:
                deadline = None if deadline is None else min(deadline * 4, 5.0)
                if code is grpc.StatusCode.UNAVAILABLE:
                    await asyncio.sleep(0.01)
                continue
            oracle.final[code] += 1
            if code is FAILED_PRECONDITION:
                oracle.refused.append(event)
            else:
                oracle.unexpected.append((event.idempotency_key, code, error.details() or ""))
            return code
        oracle.attempts[OK] += 1
        oracle.final[OK] += 1
        oracle.acknowledge(event, answer.duplicate, sum_meter=sum_meter)
        return OK
    raise AssertionError(f"{event.idempotency_key}: no definite answer after {MAX_ATTEMPTS} attempts")


# --- the workload ---------------------------------------------------------------------------------


@dataclass
class Injected:
    fresh: int = 0
    replays: int = 0
    concurrent_copies: int = 0
    payload_changes: int = 0
    short_deadlines: int = 0
    answers_to_changes: Counter[grpc.StatusCode] = field(default_factory=Counter)

    @property
    def calls(self) -> int:
        return self.fresh + self.replays + self.concurrent_copies + self.payload_changes


def _schedule(rng: random.Random, calls: int) -> list[str]:
    """The kind of each step; a concurrent pair is one step of two calls."""
    replays = round(calls * REPLAY_SHARE)
    pairs = round(calls * CONCURRENT_SHARE)
    changes = round(calls * CHANGED_SHARE)
    fresh = calls - replays - 2 * pairs - changes
    assert fresh >= WARM_UP_EVENTS
    rest = ["fresh"] * (fresh - WARM_UP_EVENTS) + ["pair"] * pairs + ["replay"] * replays
    rest += ["change"] * changes
    rng.shuffle(rest)
    return ["fresh"] * WARM_UP_EVENTS + rest


async def _drive(
    stubs: list[usage_pb2_grpc.UsageServiceStub], world: World, rng: random.Random, calls: int
) -> tuple[Oracle, Injected]:
    oracle, injected = Oracle(), Injected()
    senders = itertools.cycle(stubs)
    room = asyncio.Semaphore(IN_FLIGHT)
    running: set[asyncio.Task[Any]] = set()
    prefix = uuid.uuid4().hex[:8]
    numbers = itertools.count()

    def deadline() -> float | None:
        if rng.random() >= SHORT_DEADLINE_SHARE:
            return None
        injected.short_deadlines += 1
        return rng.uniform(*SHORT_DEADLINE_MS) / 1000

    def fresh() -> tuple[pb.UsageEvent, bool]:
        sum_meter = rng.random() < 0.5
        return _new_event(rng, world, f"{prefix}-{next(numbers):06d}", sum_meter=sum_meter), sum_meter

    async def record(event: pb.UsageEvent, sum_meter: bool) -> grpc.StatusCode:
        return await _record_until_definite(next(senders), event, deadline(), oracle, sum_meter=sum_meter)

    async def change(event: pb.UsageEvent) -> None:
        injected.answers_to_changes[await record(_with_another_value(event), True)] += 1

    for kind in _schedule(rng, calls):
        if kind == "fresh":
            injected.fresh += 1
            step = record(*fresh())
        elif kind == "pair":
            injected.fresh += 1
            injected.concurrent_copies += 1
            event, sum_meter = fresh()
            step = asyncio.gather(record(event, sum_meter), record(event, sum_meter))
        elif kind == "replay":
            injected.replays += 1
            replayed = rng.choice(oracle.replayable)
            step = record(replayed, replayed.event_name == world.sum_event)
        else:
            injected.payload_changes += 1
            # Only an acknowledged original makes the changed payload a definite conflict: an
            # original still in flight could lose the race and leave the change accepted.
            step = change(_take(rng, oracle.changeable))
        await room.acquire()
        task = asyncio.ensure_future(step)
        running.add(task)
        task.add_done_callback(lambda done: (running.discard(done), room.release()))
    await asyncio.gather(*running)
    return oracle, injected


# --- what the database and the summaries hold -----------------------------------------------------


@dataclass
class Stored:
    events: int
    distinct_keys: int
    keys: set[str]
    totals: Totals


async def _stored(url: str) -> Stored:
    connection = await asyncpg.connect(url)
    try:
        events, distinct = await connection.fetchrow(
            "SELECT count(*), count(DISTINCT idempotency_key) FROM usage_events"
        )
        keys = {r[0] for r in await connection.fetch("SELECT idempotency_key FROM usage_events")}
        rows = await connection.fetch(
            "SELECT customer_id, meter_id, coalesce(sum(value), 0) AS total, count(*) AS events "
            "FROM usage_events GROUP BY 1, 2"
        )
    finally:
        await connection.close()
    totals = {(r["customer_id"], r["meter_id"]): (r["total"], r["events"]) for r in rows}
    return Stored(events, distinct, keys, totals)


async def _summaries(stub: usage_pb2_grpc.UsageServiceStub, world: World) -> Totals:
    """What GetUsageSummary (the invoicer's aggregation) reports, for every customer and meter."""
    now = datetime.now(UTC)
    window = {"start_time": _stamp(now - timedelta(hours=2)), "end_time": _stamp(now + timedelta(hours=1))}

    async def one(customer: str, event_name: str) -> tuple[tuple[str, str], tuple[Decimal, int]]:
        answer = await stub.GetUsageSummary(
            pb.GetUsageSummaryRequest(customer=customer, meter=event_name, **window)
        )
        quantity = sum((Decimal(g.value) for g in answer.groups), Decimal(0))
        events = sum(g.event_count for g in answer.groups)
        return (customer.removeprefix("customers/"), world.meter_ids[event_name]), (quantity, events)

    answers = await asyncio.gather(
        *(one(c, e) for c in world.customers for e in (world.sum_event, world.count_event))
    )
    return {slot: totals for slot, totals in answers if totals[1]}


def _as_quantities(totals: Totals, world: World) -> Totals:
    """A COUNT meter's quantity is its number of events (its events carry no value)."""
    count_meter = world.meter_ids[world.count_event]
    return {
        slot: (Decimal(events) if slot[1] == count_meter else total, events)
        for slot, (total, events) in totals.items()
    }


# --- 1. a hundred thousand hostile single calls ---------------------------------------------------


@pytest.mark.timeout(300)
async def test_replayed_concurrent_changed_and_timed_out_calls_store_each_acknowledged_event_once(
    create_database,
) -> None:  # type: ignore[no-untyped-def]
    url = await create_database(migrated=True)
    async with _server_and_channels(url, CONNECTIONS) as channels:
        world = await _create_world(channels[0], CUSTOMERS)
        stubs = [usage_pb2_grpc.UsageServiceStub(channel) for channel in channels]
        started = time.monotonic()
        oracle, injected = await _drive(stubs, world, random.Random(SEED), CALLS)
        elapsed = time.monotonic() - started
        summaries = await _summaries(stubs[0], world)
    stored = await _stored(url)
    print(
        f"\n{injected.calls} calls in {elapsed:.1f} s ({injected.calls / elapsed:.0f}/s); {injected}\n"
        f"final answers {dict(oracle.final)}; all attempts {dict(oracle.attempts)}\n"
        f"{len(oracle.acknowledged)} keys acknowledged, {stored.events} events stored"
    )

    assert injected.calls == CALLS
    assert oracle.unexpected == [], "calls answered neither OK nor FAILED_PRECONDITION"
    assert oracle.attempts[grpc.StatusCode.INTERNAL] == oracle.attempts[grpc.StatusCode.UNKNOWN] == 0
    assert stored.events == stored.distinct_keys, "a key is stored twice"
    assert stored.events == len(oracle.acknowledged), "stored events != distinct acknowledged keys"
    assert stored.keys == set(oracle.acknowledged), "an acknowledged key is missing (a lost ack)"
    assert stored.totals == oracle.totals(world.meter_ids)
    assert summaries == _as_quantities(stored.totals, world)
    assert oracle.conflicting_acks == [], "a key was acknowledged with two payloads"
    assert max(oracle.accepted_answers.values()) == 1, "two calls were told they stored the same key"
    assert oracle.refused_replays() == [], "an exact replay was refused as a changed payload"
    assert injected.answers_to_changes == {FAILED_PRECONDITION: injected.payload_changes}
    assert oracle.final[FAILED_PRECONDITION] == injected.payload_changes


# --- 2. the database connection killed under a stream ---------------------------------------------

STREAM_BATCHES = 40
STREAM_BATCH_SIZE = 2_000
KILLS = 10
BATCHES_BETWEEN_KILLS = 3


@dataclass
class StreamRun:
    answers: dict[int, pb.StreamUsageResponse] = field(default_factory=dict)  # by batch number
    endings: list[tuple[grpc.StatusCode, str]] = field(default_factory=list)  # streams that failed
    streams: int = 0


async def _stream_until_answered(
    stub: usage_pb2_grpc.UsageServiceStub, batches: list[list[pb.UsageEvent]], run: StreamRun
) -> None:
    """Stream every batch not yet answered; after a retryable ending, open a new stream for the rest.

    One batch at a time, each sent once the previous one is answered: a grpc.aio client whose
    write is still pending when the server ends the call reports an INTERNAL of its own
    ("Internal error from Core") instead of the server's status, which would hide what the
    server said.
    """
    for _ in range(MAX_ATTEMPTS):
        unanswered = [b for b in range(len(batches)) if b not in run.answers]
        if not unanswered:
            return
        run.streams += 1
        call = stub.StreamUsage(timeout=60)
        try:
            for number in unanswered:
                await call.write(pb.StreamUsageRequest(events=batches[number]))
                answer = await call.read()
                assert answer is not grpc.aio.EOF, f"the stream ended without answering batch {number}"
                run.answers[number] = answer
            await call.done_writing()
            assert await call.code() == OK
        except grpc.aio.AioRpcError as error:
            run.endings.append((error.code(), error.details() or ""))
            if error.code() not in RETRYABLE:
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"batches still unanswered after {MAX_ATTEMPTS} streams")


async def _kill_connections_during_inserts(
    admin_url: str, database: str, run: StreamRun, done: asyncio.Event
) -> int:
    """Every few answered batches, while an insert runs, terminate every connection to the database."""
    admin = await connect(admin_url)
    kills = 0
    try:
        while not done.is_set() and kills < KILLS:
            inserting = len(run.answers) >= BATCHES_BETWEEN_KILLS * (kills + 1) and await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = $1 AND state = 'active' AND query LIKE '%WITH input AS%unnest(%'",
                database,
            )
            if not inserting:
                await asyncio.sleep(0.002)
                continue
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                database,
            )
            kills += 1
            endings = len(run.endings)
            for _ in range(200):  # let the client notice and reopen before the next kill
                if len(run.endings) > endings or done.is_set():
                    break
                await asyncio.sleep(0.01)
    finally:
        await admin.close()
    return kills


async def test_a_stream_that_loses_its_database_connection_ends_unavailable_and_retries_store_each_event_once(
    create_database, pg_server_url
) -> None:  # type: ignore[no-untyped-def]
    url = await create_database(migrated=True)
    rng = random.Random(SEED + 1)
    async with _server_and_channels(url) as [channel]:
        world = await _create_world(channel, customers=20)
        stub = usage_pb2_grpc.UsageServiceStub(channel)
        batches = [
            [
                _new_event(rng, world, f"stream-{b:02d}-{n:05d}", sum_meter=True)
                for n in range(STREAM_BATCH_SIZE)
            ]
            for b in range(STREAM_BATCHES)
        ]
        run, done = StreamRun(), asyncio.Event()
        database = urlsplit(url).path.lstrip("/")
        killer = asyncio.create_task(_kill_connections_during_inserts(pg_server_url, database, run, done))
        try:
            await _stream_until_answered(stub, batches, run)
        finally:
            done.set()
            kills = await killer
    stored = await _stored(url)
    outcomes = Counter(pb.UsageOutcome.Name(r.outcome) for a in run.answers.values() for r in a.results)
    events = [event for batch in batches for event in batch]
    print(
        f"\n{kills} kills, {run.streams} streams, failed streams {Counter(run.endings)}, "
        f"answers {dict(outcomes)}, {stored.events} events stored"
    )

    assert kills >= 1
    assert run.endings, "no stream noticed its database connection die"
    assert {code for code, _ in run.endings} == {grpc.StatusCode.UNAVAILABLE}, run.endings
    assert sorted(run.answers) == list(range(STREAM_BATCHES))
    assert set(outcomes) <= {"USAGE_OUTCOME_ACCEPTED", "USAGE_OUTCOME_DUPLICATE"}
    assert stored.events == stored.distinct_keys == len(events)
    assert stored.keys == {e.idempotency_key for e in events}
    assert sum(total for total, _ in stored.totals.values()) == sum(Decimal(e.value) for e in events)


# --- bugs the tests above found, each shown on its own --------------------------------------------


async def test_an_exact_replay_after_a_changed_copy_in_the_same_batch_is_a_duplicate_not_a_conflict(
    create_database,
) -> None:  # type: ignore[no-untyped-def]
    url = await create_database(migrated=True)
    async with _server_and_channels(url) as [channel]:
        world = await _create_world(channel, customers=1)
        stub = usage_pb2_grpc.UsageServiceStub(channel)
        original = _new_event(random.Random(SEED), world, "replayed-after-a-changed-copy", sum_meter=True)
        await stub.RecordUsage(pb.RecordUsageRequest(event=original))
        answer = await stub.RecordUsageBatch(
            pb.RecordUsageBatchRequest(events=[_with_another_value(original), original])
        )
    assert [(pb.UsageOutcome.Name(r.outcome), r.code) for r in answer.results] == [
        ("USAGE_OUTCOME_REJECTED", FAILED_PRECONDITION.value[0]),
        ("USAGE_OUTCOME_DUPLICATE", 0),
    ]


class _TerminatedConnection:
    """What asyncpg raises when a backend's FATAL "terminating connection due to administrator
    command" arrives between two protocol steps of one call (seen in the stream test above)."""

    async def fetch(self, *args: object) -> list[object]:
        raise asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress")


class _PoolOfTerminatedConnections:
    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[_TerminatedConnection]:
        yield _TerminatedConnection()


async def test_the_protocol_error_asyncpg_raises_for_a_terminated_backend_is_unavailable() -> None:
    rows = UsageRows()
    rows.add("key", "cus_1", "", "mtr_1", 1_700_000_000_000_000, "{}", "1")
    store = PostgresUsageStore(_PoolOfTerminatedConnections())  # type: ignore[arg-type]
    with pytest.raises(Unavailable):
        await store.insert(rows, LateWindow())
