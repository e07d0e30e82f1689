"""Usage ingest benchmark (DESIGN.md §9, issue 4): events per second through the real server.

    python bench/ingest.py           # from the repo root; ``make bench`` runs it too

What runs, all in one invocation (about 40 s; a watchdog stops everything if it ever hangs):

- a database: a fresh ``bench_<hex>`` on the ``DATABASE_URL`` server (dropped at the end), or an
  embedded PostgreSQL in a temporary folder when ``DATABASE_URL`` is unset; migrated and seeded
  with the demo catalog, whose meter ``conversation.message`` (sum of ``value``, dimension
  ``channel``) every event feeds; the customers are created through ``CustomerService``;
- the real rating server, ``python -m billing.cli serve`` (uvloop, JSON logs at INFO, every call
  authenticated: an admin token sets the stage, a ``usage:write`` token carries the load), pinned to
  the first CPU (helpers shared with bench/quote.py);
- the load generator, pinned to the second CPU: grpc.aio with uvloop. Every request is built as
  serialized bytes before anything is measured (each event has its own idempotency key) and
  answers are decoded only for their counts, which are checked (every event of a fresh batch
  ACCEPTED, of a replayed batch DUPLICATE);
- the baseline, pinned to the first CPU (the server's, idle meanwhile): plain asyncpg inserting
  the same rows (same generator, batch size and number of events, as many connections as there
  are streams) into a bare table with the same columns and no constraint or index, with the same
  one-statement ``INSERT ... SELECT FROM unnest(...)``, the same columns joined into texts and
  the same conversions in SQL.

Cases, one JSON line per figure on stdout (progress on stderr):

- ``stream_batched``: ``StreamUsage``, 1,000-event batches, several streams, one batch in flight
  per stream (each is answered after its commit): events/s and the time from sending a batch to
  its answer. Measured in rounds that alternate with ``raw_insert_baseline``, which inserts as
  many events as the round before it committed, so drift of the machine affects both alike;
- ``raw_insert_baseline`` and ``stream_batched_vs_baseline`` (the ratio, in percent);
- ``single_event``: ``RecordUsage`` with many calls in flight (server-side group commit), and
  ``single_event_noop_baseline``: the same calls to a bare grpc.aio server whose RecordUsage
  answers at once (pinned like the real one; measured alternately, ABBA), i.e. what gRPC alone
  allows on this machine;
- ``stream_replay_duplicates``: batches already stored, sent again: all duplicates;
- ``server_memory``: peak RSS of the server during ``stream_batched`` (sampled every 20 ms).

CPU of every party is reported per case, in percent of one core and in microseconds per event:
the server, the load generator (to show it is not the limit), PostgreSQL (all processes of the
cluster, and the backends of the bench database) when it runs on this machine, and whatever
else ran on the machine meanwhile (``other_cpu_pct``; a warning says when that disturbed the
figures). At the end the stored rows are counted against the acknowledged events.
``--py-spy BIN --profile-out FILE`` records the server with py-spy during the first window of
``--py-spy-case`` (that run's figures are then disturbed by the profiler). The roles ``client``,
``baseline`` and ``noop-server`` are this same file run with ``--role``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

# bench/quote.py: the helpers both benchmarks use.
import quote as shared
from quote import (
    OWNER_FILE,
    Processes,
    Watchdog,
    _admin,
    _alive,
    _arm_watchdog,
    _bearer,
    _child_setup,
    _cpu_seconds_of,
    _cpus,
    _ensure_venv,
    _is_problem,
    _on_term,
    _tail,
    database,
    issue_tokens,
    start_real_server,
    wait_serving,
)

BATCH_EVENTS = 1000
DEFAULT_STREAMS = 4
DEFAULT_ROUNDS = 3
DEFAULT_WARMUP_S = 1.5
DEFAULT_ROUND_WARMUP_S = 0.5
DEFAULT_MEASURE_S = 4.0
# Calls in flight: enough for group commit to gather tens of events per commit; more only adds
# per-call overhead in grpc.aio (measured here: 32-128 in flight ~3,300/s, 256 ~2,300/s).
DEFAULT_SINGLE_CONCURRENCY = 64
DEFAULT_SINGLE_CHANNELS = 4
DEFAULT_SINGLE_MEASURE_S = 5.0  # per server, in two windows (ABBA with the no-op server)
DEFAULT_REPLAY_MEASURE_S = 3.0
DEFAULT_CUSTOMERS = 50
# Requests built before measuring; past these the client builds more on the fly (and says so).
# 1.2 M events is ~140 MB of serialized batches: enough for ~100,000 events/s over all rounds.
DEFAULT_PREBUILT_EVENTS = 1_200_000
DEFAULT_PREBUILT_SINGLE = 100_000
CALL_TIMEOUT_S = 10.0
RSS_SAMPLE_S = 0.02
RUN_PREFIX = "bench-ingest-"

METER = "conversation.message"  # from the demo catalog: SUM of value, dimension channel
CHANNELS = ("email", "whatsapp", "phone", "sms")
VALUES = ("1", "2", "3", "1.5", "12")
KEY_DIGITS = 10
SINGLE_FIRST_INDEX = 5_000_000_000  # single events' keys never meet the batches' keys
STREAM_METHOD = "/billing.v1.UsageService/StreamUsage"
RECORD_METHOD = "/billing.v1.UsageService/RecordUsage"

# Targets (DESIGN.md §9, issue 4): reported next to the figures, never used to pass or fail.
TARGET_BATCHED_EVENTS_PER_S = 100_000
TARGET_RATIO_PCT = 60
TARGET_P99_BATCH_MS = 100
TARGET_SINGLE_EVENTS_PER_S = 5_000

BARE_TABLE = "usage_events_bare"
BARE_DDL = f"""
CREATE TABLE {BARE_TABLE} (
    occurred_at timestamptz, idempotency_key text, customer_id text, meter_id text,
    properties jsonb, value numeric, received_at timestamptz DEFAULT now(), cancelled_at timestamptz
)"""
# The same transport and conversions as the real insert (billing.store.usage): columns as texts
# joined by U+001F (asyncpg encodes one text far faster than an array), epoch microseconds to
# timestamptz, text to jsonb and numeric.
BARE_INSERT = f"""
INSERT INTO {BARE_TABLE} (occurred_at, idempotency_key, customer_id, meter_id, properties, value)
SELECT timestamptz 'epoch' + u * interval '1 microsecond', k, c, m, p::jsonb, nullif(v, '')::numeric
FROM unnest(string_to_array($1, E'\\x1f'), string_to_array($2, E'\\x1f'), string_to_array($3, E'\\x1f'),
            string_to_array($4, E'\\x1f')::bigint[], string_to_array($5, E'\\x1f'),
            string_to_array($6, E'\\x1f'))
    AS t(k, c, m, u, p, v)
"""


def log(message: str) -> None:
    print(f"[bench/ingest {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# The shared helpers (database(), ...) report progress under this benchmark's name.
shared.log = log


# --- the events: one deterministic generator for the client and the baseline ---------------


class Events:
    """Row ``i`` of the run: its own key, and one of ``len(customers) * 20`` payloads.

    ``combo(t)`` for ``t = i % combos`` gives the customer, channel, value and timestamp (spread
    over the last hour), so the client encodes each payload once and the baseline inserts exactly
    the rows the server stores.
    """

    def __init__(self, run: str, customers: list[str], meter_id: str, base_s: int) -> None:
        self.run = run
        self.customers = customers
        self.meter_id = meter_id
        self.base_s = base_s
        self.combos = len(customers) * len(CHANNELS) * len(VALUES)

    def key(self, i: int) -> str:
        return f"{self.run}-{i:0{KEY_DIGITS}d}"

    def combo(self, t: int) -> tuple[str, str, str, int, int]:
        """(customer id, channel, value, seconds, nanos) of payload ``t``."""
        c = len(self.customers)
        customer = self.customers[t % c]
        channel = CHANNELS[(t // c) % len(CHANNELS)]
        value = VALUES[(t // (c * len(CHANNELS))) % len(VALUES)]
        return customer, channel, value, self.base_s - (t * 37) % 3600, (t % 1000) * 1000


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class Encoder:
    """Serialized events without building a message per event: a key in front of a payload
    encoded once. ``event(i)`` is field 1 holding event ``i``, which is at once a whole
    ``RecordUsageRequest`` and one entry of a ``StreamUsageRequest``'s repeated ``events``."""

    def __init__(self, events: Events) -> None:
        from billing.v1 import usage_pb2

        self.events = events
        self.heads: list[bytes] = []
        self.tails: list[bytes] = []
        key_length = len(events.key(0))
        for t in range(events.combos):
            customer, channel, value, seconds, nanos = events.combo(t)
            payload = usage_pb2.UsageEvent(
                customer=f"customers/{customer}",
                event_name=METER,
                properties={"channel": channel},
                value=value,
            )
            payload.timestamp.seconds, payload.timestamp.nanos = seconds, nanos
            tail = payload.SerializeToString()
            body_length = 2 + key_length + len(tail)  # field 1 (the key) comes first
            self.heads.append(b"\x0a" + _varint(body_length) + b"\x0a" + bytes((key_length,)))
            self.tails.append(tail)

    def event(self, i: int) -> bytes:
        t = i % self.events.combos
        return self.heads[t] + self.events.key(i).encode() + self.tails[t]

    def batch(self, number: int) -> bytes:
        first = number * BATCH_EVENTS
        return b"".join([self.event(i) for i in range(first, first + BATCH_EVENTS)])


class Source:
    """Requests by number: prebuilt ones first, then built on the fly (counted)."""

    def __init__(self, build: Callable[[int], bytes], prebuilt: int) -> None:
        self.build = build
        self.items = [build(n) for n in range(prebuilt)]
        self.next = 0
        self.built_late = 0

    def take(self) -> tuple[int, bytes]:
        number, self.next = self.next, self.next + 1
        if number < len(self.items):
            return number, self.items[number]
        self.built_late += 1
        return number, self.build(number)


# --- measuring CPU and memory from /proc -----------------------------------------------------


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


# Processes of the whole cluster that serve every database (titles "postgres: [15/main: ]NAME").
_POSTGRES_SHARED = (
    b"checkpointer", b"background writer", b"walwriter", b"autovacuum launcher", b"archiver",
    b"logical replication launcher", b"stats collector", b"io worker", b"walsummarizer",
)  # fmt: skip


def _postgres_snapshot(postmaster: int | None, database_name: str) -> dict[int, tuple[float, bool]]:
    """CPU seconds of the postmaster, its shared processes and the backends of our database, and
    whether each is such a backend. Backends of other databases (other jobs sharing the server)
    are left out: they show as ``other_cpu_pct``."""
    if postmaster is None:
        return {}
    snapshot: dict[int, tuple[float, bool]] = {}
    mark = f" {database_name} ".encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            if pid != postmaster and int(fields[1]) != postmaster:
                continue
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").rstrip()
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        ours = mark in title + b" "
        if not ours and pid != postmaster and not title.endswith(_POSTGRES_SHARED):
            continue  # a backend of another database
        cpu_s = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        snapshot[pid] = (cpu_s, ours)
    return snapshot


def _postgres_cpu_s(
    before: dict[int, tuple[float, bool]], after: dict[int, tuple[float, bool]]
) -> tuple[float, float]:
    """(all of PostgreSQL, our database's backends) between two snapshots. A process started in
    between counts in full; one that ended in between is missed (autovacuum workers, rarely)."""
    total = ours = 0.0
    for pid, (cpu_s, serves_us) in after.items():
        used = cpu_s - before.get(pid, (0.0, serves_us))[0]
        total += used
        if serves_us:
            ours += used
    return total, ours


def _machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all CPUs), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class CpuWindow:
    """CPU used by this process, the server (if any) and PostgreSQL between open() and close()."""

    def __init__(self, server_pid: int | None, postmaster: int | None, database_name: str) -> None:
        self.server_pid = server_pid
        self.postmaster = postmaster
        self.database_name = database_name

    def open(self) -> None:
        self.began = time.perf_counter()
        self.own = _own_cpu_s()
        self.server = _cpu_seconds_of(self.server_pid) if self.server_pid else 0.0
        self.postgres = _postgres_snapshot(self.postmaster, self.database_name)
        self.machine = _machine_busy_s()

    def close(self) -> dict[str, Any]:
        elapsed_s = time.perf_counter() - self.began
        own = _own_cpu_s() - self.own
        server = _cpu_seconds_of(self.server_pid) - self.server if self.server_pid else 0.0
        pg_total, pg_ours = _postgres_cpu_s(
            self.postgres, _postgres_snapshot(self.postmaster, self.database_name)
        )
        return {
            "elapsed_s": elapsed_s,
            "machine_cpu_s": _machine_busy_s() - self.machine,
            "own_cpu_s": own,
            "server_cpu_s": server,
            "pg_cpu_s": pg_total if self.postmaster else None,
            "pg_backend_cpu_s": pg_ours if self.postmaster else None,
        }


# --- child roles: talking to the orchestrator ------------------------------------------------


def _emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


async def _commands() -> Any:
    """The orchestrator's commands, one JSON object a line on stdin."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = json.loads(line)
        if command["cmd"] == "quit":
            return
        yield command


def _percentile(values: list[float], p: float) -> float | None:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] if ordered else None


def _config(path: str) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(Path(path).read_text())
    return config


def _events(config: dict[str, Any]) -> Events:
    return Events(config["run"], config["customers"], config["meter_id"], config["base_s"])


# --- role: load generator --------------------------------------------------------------------


def client(args: argparse.Namespace) -> None:
    _child_setup(args.cpu)
    import grpc
    import uvloop

    from billing.v1 import usage_pb2

    config = _config(args.config)
    server_pid: int = config["server_pid"]
    postmaster: int | None = config["postmaster"]
    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", 16 << 20)]
    # Every call carries the usage writer's token (the no-op server gets it too, and ignores it).
    metadata = _bearer(config["token"])

    started = time.perf_counter()
    encoder = Encoder(_events(config))
    batches = Source(encoder.batch, -(-args.prebuilt_events // BATCH_EVENTS))
    singles = Source(lambda n: encoder.event(SINGLE_FIRST_INDEX + n), args.prebuilt_single)
    sample = usage_pb2.StreamUsageRequest.FromString(batches.items[0] if batches.items else encoder.batch(0))
    assert len(sample.events) == BATCH_EVENTS
    assert sample.events[0].idempotency_key == encoder.events.key(0)
    assert sample.events[1].value
    assert sample.events[1].properties["channel"] in CHANNELS
    stored: list[int] = []  # batch numbers acknowledged as accepted, for the replay
    build_s = time.perf_counter() - started

    async def stream_case(command: dict[str, Any]) -> dict[str, Any]:
        replay = command["mode"] == "replay"
        replayed = iter(stored[n % len(stored)] for n in range(1 << 40)) if replay else None
        channels = [
            grpc.aio.insecure_channel(args.target, options=options) for _ in range(command["streams"])
        ]
        for channel in channels:
            await asyncio.wait_for(channel.channel_ready(), 10)
        window = [float("inf"), float("inf")]
        latencies: list[float] = []
        counted = [0]
        totals = {"accepted": 0, "duplicate": 0, "batches": 0}
        errors: list[str] = []
        stop = False
        rss_peak = [_rss_kib(server_pid)]

        async def worker(channel: Any) -> None:
            call = channel.stream_stream(STREAM_METHOD)(
                timeout=command["warmup_s"] + command["measure_s"] + 30, metadata=metadata
            )
            perf = time.perf_counter
            try:
                while not stop:
                    if replayed is not None:
                        number = next(replayed)
                        data = batches.items[number] if number < len(batches.items) else encoder.batch(number)
                    else:
                        number, data = batches.take()
                    began = perf()
                    await call.write(data)
                    answer = await call.read()
                    ended = perf()
                    if answer is grpc.aio.EOF:
                        raise RuntimeError("the stream ended early")
                    reply = usage_pb2.StreamUsageResponse.FromString(answer)
                    totals["accepted"] += reply.accepted_count
                    totals["duplicate"] += reply.duplicate_count
                    totals["batches"] += 1
                    expected = reply.duplicate_count if replay else reply.accepted_count
                    if expected != BATCH_EVENTS:
                        first = next((r for r in reply.results if r.reason), None)
                        raise RuntimeError(
                            f"batch {number}: accepted {reply.accepted_count}, duplicate "
                            f"{reply.duplicate_count}, rejected {reply.rejected_count}"
                            + (f" (first: {first.field}: {first.reason})" if first else "")
                        )
                    if not replay:
                        stored.append(number)
                    if window[0] <= ended < window[1]:
                        latencies.append((ended - began) * 1000)
                        counted[0] += BATCH_EVENTS
                await call.done_writing()
                while await call.read() is not grpc.aio.EOF:
                    pass
            except (grpc.aio.AioRpcError, RuntimeError) as error:
                detail = (
                    f"{error.code().name}: {error.details()}"
                    if isinstance(error, grpc.aio.AioRpcError)
                    else str(error)
                )
                errors.append(detail)
                call.cancel()

        async def sample_rss() -> None:
            while not stop:
                with contextlib.suppress(OSError):
                    rss_peak[0] = max(rss_peak[0], _rss_kib(server_pid))
                await asyncio.sleep(RSS_SAMPLE_S)

        workers = [asyncio.create_task(worker(channel)) for channel in channels]
        sampler = asyncio.create_task(sample_rss())
        await asyncio.sleep(command["warmup_s"])
        cpu = CpuWindow(server_pid, postmaster, config["database"])
        cpu.open()
        window[0] = time.perf_counter()
        window[1] = window[0] + command["measure_s"]
        _emit({"event": "measuring", "case": command["mode"], "round": command.get("round", 0)})
        await asyncio.sleep(command["measure_s"])
        usage = cpu.close()
        stop = True
        await asyncio.gather(*workers, sampler)
        for channel in channels:
            await channel.close()
        return {
            "events": counted[0],
            "window_s": command["measure_s"],
            "latencies_ms": latencies,
            "errors": errors,
            "totals": totals,
            "server_rss_peak_kib": rss_peak[0],
            "server_vmhwm_kib": _rss_kib(server_pid, "VmHWM"),
            "built_late": batches.built_late,
            **usage,
        }

    async def single_case(command: dict[str, Any]) -> dict[str, Any]:
        target, pid = command.get("target", args.target), command.get("server_pid", server_pid)
        channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(command["channels"])]
        for channel in channels:
            await asyncio.wait_for(channel.channel_ready(), 10)
        stubs = [channel.unary_unary(RECORD_METHOD) for channel in channels]
        window = [float("inf"), float("inf")]
        latencies: list[float] = []
        errors: list[str] = []
        totals = {"accepted": 0, "duplicate": 0}
        stop = False

        async def worker(stub: Any) -> None:
            perf = time.perf_counter
            while not stop:
                _, request = singles.take()
                began = perf()
                try:
                    answer = await stub(request, timeout=CALL_TIMEOUT_S, metadata=metadata)
                except grpc.aio.AioRpcError as error:
                    errors.append(f"{error.code().name}: {error.details()}")
                    if len(errors) > 100:
                        return
                    continue
                ended = perf()
                if answer:  # RecordUsageResponse(duplicate=True); a fresh event encodes as b""
                    totals["duplicate"] += 1
                    errors.append(f"fresh event answered {answer!r}")
                    continue
                totals["accepted"] += 1
                if window[0] <= ended < window[1]:
                    latencies.append((ended - began) * 1000)

        workers = [asyncio.create_task(worker(stubs[i % len(stubs)])) for i in range(command["concurrency"])]
        await asyncio.sleep(command["warmup_s"])
        cpu = CpuWindow(pid, postmaster, config["database"])
        cpu.open()
        window[0] = time.perf_counter()
        window[1] = window[0] + command["measure_s"]
        _emit({"event": "measuring", "case": command["case"], "round": command["round"]})
        await asyncio.sleep(command["measure_s"])
        usage = cpu.close()
        stop = True
        await asyncio.gather(*workers)
        for channel in channels:
            await channel.close()
        return {
            "events": len(latencies),
            "window_s": command["measure_s"],
            "latencies_ms": latencies,
            "errors": errors,
            "totals": totals,
            "built_late": singles.built_late,
            **usage,
        }

    async def run() -> None:
        _emit({"event": "ready", "build_s": build_s, "prebuilt_batches": len(batches.items)})
        async for command in _commands():
            if command["cmd"] == "stream":
                result = await stream_case(command)
            else:
                result = await single_case(command)
            _emit({"event": "result", **result})

    uvloop.run(run())


# --- role: no-op server, the baseline of single-event calls ----------------------------------


def noop_server(args: argparse.Namespace) -> None:
    """A bare grpc.aio server (uvloop) whose RecordUsage answers at once: what gRPC alone costs."""
    _child_setup(args.cpu)
    import grpc
    import uvloop

    from billing.v1 import usage_pb2, usage_pb2_grpc

    class NoopUsage(usage_pb2_grpc.UsageServiceServicer):
        async def RecordUsage(self, request: Any, context: Any) -> Any:
            return usage_pb2.RecordUsageResponse()

    async def serve() -> None:
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        usage_pb2_grpc.add_UsageServiceServicer_to_server(NoopUsage(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        _emit({"event": "ready", "port": port})
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()
        await server.stop(1.0)

    uvloop.run(serve())


# --- role: baseline (plain asyncpg into a bare table) ----------------------------------------


def baseline(args: argparse.Namespace) -> None:
    _child_setup(args.cpu)
    import uvloop

    from billing.store.database import create_pool

    config = _config(args.config)
    events = _events(config)
    combos = [events.combo(t) for t in range(events.combos)]
    properties = [json.dumps({"channel": channel}, separators=(",", ":")) for _, channel, *_ in combos]
    next_row = [0]

    def columns(count: int) -> list[tuple[str, ...]]:
        """``count`` batches of the next rows, as the joined columns the statement takes."""
        out = []
        for _ in range(count):
            first, next_row[0] = next_row[0], next_row[0] + BATCH_EVENTS
            keys, customers, meters, micros, props, values = [], [], [], [], [], []
            for i in range(first, first + BATCH_EVENTS):
                t = i % events.combos
                customer, _, value, second, nano = combos[t]
                keys.append(events.key(i))
                customers.append(customer)
                meters.append(events.meter_id)
                micros.append(str(second * 1_000_000 + nano // 1000))
                props.append(properties[t])
                values.append(value)
            fields = (keys, customers, meters, micros, props, values)
            out.append(tuple("\x1f".join(field) for field in fields))
        return out

    async def insert_all(connection: Any, queue: Iterator[tuple[str, ...]], latencies: list[float]) -> None:
        for joined in queue:  # shared by the connections: each takes the next batch
            began = time.perf_counter()
            await connection.execute(BARE_INSERT, *joined)
            latencies.append((time.perf_counter() - began) * 1000)

    async def run() -> None:
        pool = await create_pool(
            config["url"],
            min_size=args.connections,
            max_size=args.connections,
            application_name="bench-baseline",
        )
        async with pool.acquire() as connection:
            await connection.execute(BARE_DDL)
        connections = [await pool.acquire() for _ in range(args.connections)]
        # Warm up every connection (and its prepared statement) once, before any measurement.
        await asyncio.gather(*(c.execute(BARE_INSERT, *columns(1)[0]) for c in connections))
        inserted = [len(connections) * BATCH_EVENTS]
        _emit({"event": "ready"})
        async for command in _commands():
            todo = columns(command["batches"])
            latencies: list[float] = []
            cpu = CpuWindow(None, config["postmaster"], config["database"])
            cpu.open()
            queue = iter(todo)
            await asyncio.gather(*(insert_all(c, queue, latencies) for c in connections))
            usage = cpu.close()
            inserted[0] += len(todo) * BATCH_EVENTS
            _emit(
                {
                    "event": "result",
                    "events": len(todo) * BATCH_EVENTS,
                    "latencies_ms": latencies,
                    "inserted_total": inserted[0],
                    **usage,
                }
            )
        for connection in connections:
            await pool.release(connection)
        await pool.close()

    uvloop.run(run())


# --- orchestration ---------------------------------------------------------------------------


def reap_killed_runs() -> None:
    """What a run killed with SIGKILL left behind (see bench/quote.py), for this bench's runs."""
    from billing.store.embedded import EmbeddedPostgres

    admin_url = os.environ.get("DATABASE_URL", "").strip()
    for folder in Path(tempfile.gettempdir()).glob(f"{RUN_PREFIX}*"):
        try:
            owner = json.loads((folder / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if _alive(int(owner["pid"])):
            continue
        try:
            if (folder / "pgdata").is_dir():
                EmbeddedPostgres(folder / "pgdata").start().stop()
            elif admin_url:
                asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{owner["database"]}" WITH (FORCE)'))
            else:
                continue
        except Exception as error:
            log(f"could not clean up {folder}: {type(error).__name__}: {error}")
            continue
        shutil.rmtree(folder, ignore_errors=True)
        log(f"cleaned up after a killed run: {folder}")


def create_customers(target: str, count: int, token: str) -> list[str]:
    """Customers through the API; their ids (without ``customers/``)."""
    import grpc

    from billing.v1 import customer_pb2, customer_pb2_grpc

    ids = []
    with grpc.insecure_channel(target) as channel:
        stub = customer_pb2_grpc.CustomerServiceStub(channel)
        for n in range(count):
            customer = stub.CreateCustomer(
                customer_pb2.CreateCustomerRequest(
                    customer=customer_pb2.Customer(
                        display_name=f"Ingest {n}", currency="USD", crm_account_id=f"ingest-{n}"
                    ),
                    request_id=f"bench-{uuid.uuid4().hex}",
                ),
                timeout=5,
                metadata=_bearer(token),
            ).customer
            ids.append(customer.name.removeprefix("customers/"))
    return ids


def meter_id(target: str, token: str) -> str:
    import grpc

    from billing.v1 import catalog_pb2, catalog_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        meters = catalog_pb2_grpc.CatalogServiceStub(channel).ListMeters(
            catalog_pb2.ListMetersRequest(page_size=1000), timeout=5, metadata=_bearer(token)
        )
    for meter in meters.meters:
        if meter.event_name == METER:
            assert meter.aggregation == catalog_pb2.AGGREGATION_SUM
            assert "channel" in meter.dimensions
            return meter.name.removeprefix("meters/")
    raise RuntimeError(f"no meter {METER!r} in the catalog")


async def _query(url: str, sql: str) -> Any:
    from billing.store.database import connect

    connection = await connect(url)
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


def _parent_if_serving(backend: int, database_name: str) -> int | None:
    """The parent (the postmaster) of ``backend`` if that is our database's backend here."""
    try:
        title = Path(f"/proc/{backend}/cmdline").read_bytes().replace(b"\0", b" ")
        fields = Path(f"/proc/{backend}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None  # another machine (or another pid namespace)
    return int(fields[1]) if f" {database_name} ".encode() in title else None


async def _postmaster_of(url: str, database_name: str) -> int | None:
    """The PostgreSQL postmaster's pid, if the server runs on this machine."""
    from billing.store.database import connect

    connection = await connect(url)
    try:
        return _parent_if_serving(int(await connection.fetchval("SELECT pg_backend_pid()")), database_name)
    finally:
        await connection.close()


class Child:
    """A role process that answers one JSON command with JSON lines on its stdout."""

    def __init__(self, name: str, process: subprocess.Popen[bytes]) -> None:
        self.name = name
        self.process = process

    def expect(self, kind: str, on_event: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            event: dict[str, Any] = json.loads(raw)
            if event["event"] == kind:
                return event
            if on_event is not None:
                on_event(event)
        raise RuntimeError(f"the {self.name} exited ({self.process.wait()}) before answering")

    def ask(
        self, command: dict[str, Any], on_event: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(command) + "\n").encode())
        self.process.stdin.flush()
        return self.expect("result", on_event)

    def quit(self) -> None:
        assert self.process.stdin is not None
        with contextlib.suppress(OSError):
            self.process.stdin.write(b'{"cmd": "quit"}\n')
            self.process.stdin.close()
        self.process.wait(10)


def _self(role: str, *extra: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--role", role, *extra]


def _start_child(procs: Processes, name: str, role: str, cpu: int | None, *extra: str) -> Child:
    argv = _self(role, *extra, *(["--cpu", str(cpu)] if cpu is not None else []))
    return Child(name, procs.start(name, argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE))


def _pct(cpu_s: float | None, elapsed_s: float) -> float | None:
    return None if cpu_s is None else round(100 * cpu_s / elapsed_s)


def _pooled(results: list[dict[str, Any]], time_key: str) -> dict[str, Any]:
    """Rounds pooled: events over the summed time; CPU in percent of one core over that time."""
    seconds = sum(r[time_key] for r in results)
    elapsed = sum(r["elapsed_s"] for r in results)
    latencies = [x for r in results for x in r["latencies_ms"]]

    def cpu(key: str) -> float | None:
        values = [r.get(key) for r in results]
        return None if any(v is None for v in values) else _pct(sum(values), elapsed)  # type: ignore[arg-type]

    machine, ours = cpu("machine_cpu_s"), [cpu(k) for k in ("server_cpu_s", "own_cpu_s", "pg_cpu_s")]
    return {
        "machine_cpu_pct": machine,
        # CPU used by processes outside this benchmark (other jobs on the machine): disturbance.
        "other_cpu_pct": None if machine is None or None in ours else machine - sum(ours),  # type: ignore[arg-type]
        "events_per_s": sum(r["events"] for r in results) / seconds,
        "rounds": [round(r["events"] / r[time_key]) for r in results],
        "p50_ms": _percentile(latencies, 50),
        "p99_ms": _percentile(latencies, 99),
        "max_ms": max(latencies) if latencies else None,
        "server_cpu_pct": cpu("server_cpu_s"),
        "own_cpu_pct": cpu("own_cpu_s"),
        "pg_cpu_pct": cpu("pg_cpu_s"),
        "pg_backend_cpu_pct": cpu("pg_backend_cpu_s"),
    }


def _r(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _check(result: dict[str, Any], what: str) -> None:
    if result["errors"]:
        raise RuntimeError(f"{what}: {len(result['errors'])} errors, first: {result['errors'][0]}")
    if not result["events"]:
        raise RuntimeError(f"{what}: nothing completed in the measurement window")
    if result.get("built_late"):
        log(f"{what}: the client ran out of prebuilt requests and built {result['built_late']} more")


def orchestrate(args: argparse.Namespace) -> int:
    load_s = (
        args.warmup_s
        + args.rounds * (args.measure_s + args.round_warmup_s + 3.0)
        + 5 * args.round_warmup_s
        + 2 * args.single_measure_s
        + args.replay_measure_s
    )
    signal.signal(signal.SIGTERM, _on_term)
    _arm_watchdog(max(90, int(load_s + 50)))
    server_cpu, client_cpu = _cpus()
    procs = Processes()
    workdir = Path(tempfile.mkdtemp(prefix=RUN_PREFIX))
    server_log = workdir / "rating-server.log"
    name = f"bench_{secrets.token_hex(4)}"
    (workdir / OWNER_FILE).write_text(json.dumps({"pid": os.getpid(), "database": name}))
    stream_rounds: list[dict[str, Any]] = []
    baseline_rounds: list[dict[str, Any]] = []
    try:
        reap_killed_runs()
        with database(workdir, name) as url:
            try:
                # Issued before the server starts, so it loads them with everything else.
                admin_token, usage_token = asyncio.run(issue_tokens(url, "billing:admin", "usage:write"))
                server, port = start_real_server(procs, url, server_cpu, server_log)
                target = f"127.0.0.1:{port}"
                wait_serving(target, server, server_log, timeout_s=20)
                log(f"rating server SERVING on {target} (pid {server.pid})")
                customers = create_customers(target, args.customers, admin_token)
                meter = meter_id(target, admin_token)
                postmaster = asyncio.run(_postmaster_of(url, name))
                log(
                    f"{len(customers)} customers created, meter {METER} = {meter}; "
                    + (
                        f"PostgreSQL postmaster pid {postmaster}"
                        if postmaster
                        else "PostgreSQL not on this machine"
                    )
                )
                config = workdir / "config.json"
                config.write_text(
                    json.dumps(
                        {
                            "url": url,
                            "database": name,
                            "run": secrets.token_hex(4),
                            "customers": customers,
                            "meter_id": meter,
                            "base_s": int(time.time()) - 60,
                            "server_pid": server.pid,
                            "postmaster": postmaster,
                            "token": usage_token,
                        }
                    )
                )
                base = _start_child(
                    procs, "baseline", "baseline", server_cpu, "--config", str(config),
                    "--connections", str(args.streams),
                )  # fmt: skip
                base.expect("ready")
                load = _start_child(
                    procs, "load generator", "client", client_cpu, "--config", str(config),
                    "--target", target, "--prebuilt-events", str(args.prebuilt_events),
                    "--prebuilt-single", str(args.prebuilt_single),
                )  # fmt: skip
                ready = load.expect("ready")
                log(
                    f"client built {ready['prebuilt_batches']} batches of {BATCH_EVENTS} events in "
                    f"{ready['build_s']:.1f} s; {args.streams} streams; server on CPU {server_cpu}, "
                    f"load generator on CPU {client_cpu}, baseline inserter on CPU {server_cpu}"
                )
                rss_before_kib = _rss_kib(server.pid)

                def on_event(event: dict[str, Any]) -> None:
                    if args.py_spy and event.get("case") == args.py_spy_case and event.get("round") == 0:
                        window_s = {"fresh": args.measure_s, "single": args.single_measure_s}.get(
                            args.py_spy_case, args.replay_measure_s
                        )
                        duration = str(max(1, int(window_s)))
                        procs.start(
                            "py-spy",
                            [
                                args.py_spy, "record", "--pid", str(server.pid), "--duration", duration,
                                "--rate", "250", "--format", "raw", "--output", args.profile_out,
                                # Native frames need py-spy to stop the process for each sample.
                                *(["--native"] if args.py_spy_native else ["--nonblocking"]),
                            ],
                            stdin=subprocess.DEVNULL, stdout=sys.stderr, stderr=sys.stderr,
                        )  # fmt: skip

                for round_ in range(args.rounds):
                    warmup = args.warmup_s if round_ == 0 else args.round_warmup_s
                    stream = load.ask(
                        {
                            "cmd": "stream", "mode": "fresh", "streams": args.streams, "warmup_s": warmup,
                            "measure_s": args.measure_s, "round": round_,
                        },
                        on_event,
                    )  # fmt: skip
                    _check(stream, "stream_batched")
                    stream_rounds.append(stream)
                    raw = base.ask({"cmd": "insert", "batches": stream["events"] // BATCH_EVENTS})
                    baseline_rounds.append(raw)
                    a, b = _pooled([stream], "window_s"), _pooled([raw], "elapsed_s")
                    log(
                        f"round {round_}: stream {a['events_per_s']:.0f} events/s (p99 {a['p99_ms']:.1f} ms, "
                        f"CPU: server {a['server_cpu_pct']}%, client {a['own_cpu_pct']}%, PostgreSQL "
                        f"{a['pg_cpu_pct']}%, others {a['other_cpu_pct']}%); "
                        f"baseline {b['events_per_s']:.0f} events/s (CPU: inserter {b['own_cpu_pct']}%, "
                        f"PostgreSQL {b['pg_cpu_pct']}%, "
                        f"others {b['other_cpu_pct']}%)"
                    )
                noop = _start_child(procs, "no-op server", "noop-server", server_cpu)
                noop_port = noop.expect("ready")["port"]
                targets = {
                    "single": {},
                    "noop": {"target": f"127.0.0.1:{noop_port}", "server_pid": noop.process.pid},
                }
                single_rounds: dict[str, list[dict[str, Any]]] = {"single": [], "noop": []}
                for round_, case in enumerate(("single", "noop", "noop", "single")):  # ABBA
                    result = load.ask(
                        {
                            "cmd": "single", "case": case, "round": round_ // 2, **targets[case],
                            "concurrency": args.single_concurrency, "channels": args.single_channels,
                            "warmup_s": 1.0 if round_ == 0 else args.round_warmup_s,
                            "measure_s": args.single_measure_s / 2,
                        },
                        on_event,
                    )  # fmt: skip
                    _check(result, f"{case} single-event calls")
                    single_rounds[case].append(result)
                noop.process.send_signal(signal.SIGTERM)  # it reads no commands
                try:
                    noop.process.wait(10)
                except subprocess.TimeoutExpired:
                    # Its figures are taken; on a loaded machine its graceful stop can lag.
                    noop.process.kill()
                    noop.process.wait()
                replay = load.ask(
                    {
                        "cmd": "stream", "mode": "replay", "streams": args.streams,
                        "warmup_s": args.round_warmup_s, "measure_s": args.replay_measure_s,
                    },
                    on_event,
                )  # fmt: skip
                _check(replay, "stream_replay_duplicates")
                for what, results in (
                    ("single events", single_rounds["single"]),
                    ("no-op server, single calls", single_rounds["noop"]),
                    ("replay", [replay]),
                ):
                    p = _pooled(results, "window_s")
                    log(
                        f"{what}: {p['events_per_s']:.0f} events/s (CPU: server {p['server_cpu_pct']}%, "
                        f"client {p['own_cpu_pct']}%, PostgreSQL {p['pg_cpu_pct']}%, "
                        f"others {p['other_cpu_pct']}%)"
                    )
                load.quit()
                base.quit()

                # Every acknowledged event is stored, once; the baseline stored what it was told.
                accepted = sum(r["totals"]["accepted"] for r in (*stream_rounds, *single_rounds["single"]))
                stored_events = asyncio.run(_query(url, "SELECT count(*) FROM usage_events"))
                stored_keys = asyncio.run(_query(url, "SELECT count(*) FROM usage_keys"))
                bare = asyncio.run(_query(url, f"SELECT count(*) FROM {BARE_TABLE}"))
                if not stored_events == stored_keys == accepted:
                    raise RuntimeError(
                        f"{accepted} events acknowledged, {stored_events} stored ({stored_keys} keys)"
                    )
                if bare != baseline_rounds[-1]["inserted_total"]:
                    raise RuntimeError(
                        f"baseline: {baseline_rounds[-1]['inserted_total']} inserted, {bare} stored"
                    )
                log(f"checked: {stored_events} events acknowledged and stored, {bare} rows in the bare table")
                problems = [line for line in _tail(server_log, 1000).splitlines() if _is_problem(line)]
                if problems:
                    log("the rating server logged:\n" + "\n".join(problems[-20:]))
            finally:
                # Stop the server before its database is dropped (or the embedded one stops).
                signal.alarm(0)
                procs.stop_all()
    finally:
        signal.alarm(0)
        procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)

    lines = report(args, stream_rounds, baseline_rounds, single_rounds, replay, rss_before_kib)
    # Kernel time not charged to any process (loopback networking) shows there too: up to ~5 % of
    # a core on a quiet machine.
    disturbed = [
        f"{line['case']} {line['other_cpu_pct']}%" for line in lines if (line.get("other_cpu_pct") or 0) > 25
    ]
    if disturbed:
        log("WARNING: other processes on this machine took CPU during " + ", ".join(disturbed) + ": rerun")
    for line in lines:
        print(json.dumps(line), flush=True)
    return 0


def _figures(pooled: dict[str, Any], latency: str = "batch_ms") -> dict[str, Any]:
    return {
        "events_per_s": round(pooled["events_per_s"]),
        f"p50_{latency}": _r(pooled["p50_ms"], 2),
        f"p99_{latency}": _r(pooled["p99_ms"], 2),
        f"max_{latency}": _r(pooled["max_ms"], 2),
    }


def _cpu(pooled: dict[str, Any], own: str = "client_cpu_pct") -> dict[str, Any]:
    """CPU in percent of one core, and per event in microseconds (what a target rate can afford:
    100,000 events/s on 2 cores leave 20 us of CPU per event for server, PostgreSQL and client)."""

    def per_event(pct: float | None) -> float | None:
        return None if pct is None else round(pct * 1e4 / pooled["events_per_s"], 1)

    return {
        "server_cpu_pct": pooled["server_cpu_pct"],
        own: pooled["own_cpu_pct"],
        "pg_cpu_pct": pooled["pg_cpu_pct"],
        "pg_backend_cpu_pct": pooled["pg_backend_cpu_pct"],
        "machine_cpu_pct": pooled["machine_cpu_pct"],
        "other_cpu_pct": pooled["other_cpu_pct"],
        "server_cpu_us_per_event": per_event(pooled["server_cpu_pct"]),
        own.replace("_pct", "_us_per_event"): per_event(pooled["own_cpu_pct"]),
        "pg_cpu_us_per_event": per_event(pooled["pg_cpu_pct"]),
    }


def report(
    args: argparse.Namespace,
    stream_rounds: list[dict[str, Any]],
    baseline_rounds: list[dict[str, Any]],
    single_rounds: dict[str, list[dict[str, Any]]],
    replay: dict[str, Any],
    rss_before_kib: int,
) -> list[dict[str, Any]]:
    """The JSON lines (DESIGN.md §9), with the targets next to the figures they apply to."""
    batched = _pooled(stream_rounds, "window_s")
    raw = _pooled(baseline_rounds, "elapsed_s")
    one = _pooled(single_rounds["single"], "window_s")
    noop = _pooled(single_rounds["noop"], "window_s")
    again = _pooled([replay], "window_s")
    ratio_pct = 100 * batched["events_per_s"] / raw["events_per_s"]
    shape = {"streams": args.streams, "batch_events": BATCH_EVENTS}
    batched_ok = batched["events_per_s"] >= TARGET_BATCHED_EVENTS_PER_S and (
        batched["p99_ms"] <= TARGET_P99_BATCH_MS
    )
    raw_cpu = _cpu(raw, own="inserter_cpu_pct")
    del raw_cpu["server_cpu_pct"], raw_cpu["server_cpu_us_per_event"]  # idle; the inserter has its CPU
    return [
        {
            "bench": "ingest",
            "case": "stream_batched",
            **_figures(batched),
            **shape,
            "rounds": args.rounds,
            "round_events_per_s": batched["rounds"],
            **_cpu(batched),
            "target_events_per_s": TARGET_BATCHED_EVENTS_PER_S,
            "target_p99_batch_ms": TARGET_P99_BATCH_MS,
            "meets_target": batched_ok,
        },
        {
            "bench": "ingest",
            "case": "raw_insert_baseline",
            **_figures(raw),
            "connections": args.streams,
            "batch_events": BATCH_EVENTS,
            "round_events_per_s": raw["rounds"],
            **raw_cpu,
        },
        {
            "bench": "ingest",
            "case": "stream_batched_vs_baseline",
            "ratio_pct": round(ratio_pct, 1),
            "target_ratio_pct": TARGET_RATIO_PCT,
            "meets_target": ratio_pct >= TARGET_RATIO_PCT,
        },
        {
            "bench": "ingest",
            "case": "single_event",
            **_figures(one, latency="ms"),
            "concurrency": args.single_concurrency,
            "channels": args.single_channels,
            **_cpu(one),
            "target_events_per_s": TARGET_SINGLE_EVENTS_PER_S,
            "meets_target": one["events_per_s"] >= TARGET_SINGLE_EVENTS_PER_S,
        },
        {
            "bench": "ingest",
            "case": "single_event_noop_baseline",
            "calls_per_s": round(noop["events_per_s"]),
            "p50_ms": _r(noop["p50_ms"], 2),
            "p99_ms": _r(noop["p99_ms"], 2),
            "concurrency": args.single_concurrency,
            "channels": args.single_channels,
            "server_cpu_pct": noop["server_cpu_pct"],
            "client_cpu_pct": noop["own_cpu_pct"],
            "machine_cpu_pct": noop["machine_cpu_pct"],
            "other_cpu_pct": noop["other_cpu_pct"],
            "single_event_ratio_pct": round(100 * one["events_per_s"] / noop["events_per_s"], 1),
        },
        {
            "bench": "ingest",
            "case": "stream_replay_duplicates",
            **_figures(again),
            **shape,
            **_cpu(again),
        },
        {
            "bench": "ingest",
            "case": "server_memory",
            "during": "stream_batched",
            "peak_rss_mib": round(max(r["server_rss_peak_kib"] for r in stream_rounds) / 1024, 1),
            "vmhwm_mib": round(max(r["server_vmhwm_kib"] for r in stream_rounds) / 1024, 1),
            "rss_before_mib": round(rss_before_kib / 1024, 1),
        },
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=("bench", "client", "baseline", "noop-server"), default="bench")
    parser.add_argument("--streams", type=int, default=DEFAULT_STREAMS, help="concurrent StreamUsage streams")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="stream/baseline rounds")
    parser.add_argument("--warmup-s", type=float, default=DEFAULT_WARMUP_S, help="before the first round")
    parser.add_argument(
        "--round-warmup-s", type=float, default=DEFAULT_ROUND_WARMUP_S, help="before later ones"
    )
    parser.add_argument("--measure-s", type=float, default=DEFAULT_MEASURE_S, help="one stream window")
    parser.add_argument("--single-concurrency", type=int, default=DEFAULT_SINGLE_CONCURRENCY)
    parser.add_argument("--single-channels", type=int, default=DEFAULT_SINGLE_CHANNELS)
    parser.add_argument("--single-measure-s", type=float, default=DEFAULT_SINGLE_MEASURE_S)
    parser.add_argument("--replay-measure-s", type=float, default=DEFAULT_REPLAY_MEASURE_S)
    parser.add_argument("--customers", type=int, default=DEFAULT_CUSTOMERS)
    parser.add_argument("--prebuilt-events", type=int, default=DEFAULT_PREBUILT_EVENTS)
    parser.add_argument("--prebuilt-single", type=int, default=DEFAULT_PREBUILT_SINGLE)
    parser.add_argument("--py-spy", metavar="BIN", help="record the server with py-spy during one window")
    parser.add_argument(
        "--py-spy-case",
        choices=("fresh", "single", "replay"),
        default="fresh",
        help="the window to record: stream_batched (fresh), single_event or the replay",
    )
    parser.add_argument(
        "--py-spy-native",
        action="store_true",
        help="with native (C) frames (py-spy then pauses the server per sample)",
    )
    parser.add_argument("--profile-out", default="ingest-profile.txt", help="py-spy raw (collapsed) output")
    parser.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, default=DEFAULT_STREAMS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "client":
        client(args)
        return 0
    if args.role == "baseline":
        baseline(args)
        return 0
    if args.role == "noop-server":
        noop_server(args)
        return 0
    _ensure_venv()
    try:
        return orchestrate(args)
    except (Watchdog, RuntimeError, AssertionError, OSError) as error:
        log(f"FAILED: {type(error).__name__}: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
