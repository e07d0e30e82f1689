"""Noisy-neighbour benchmark (issue 6): one caller far over its rate limit must not raise another
caller's p99 latency by more than 20 %.

    python bench/noisy_neighbour.py          # from the repo root; ``make bench`` runs it too

What runs (about 5 minutes): a fresh database (``DATABASE_URL``'s server, or an embedded PostgreSQL)
migrated and seeded with the demo catalog and three tokens; the real rating server
(``billing serve``, production logging) pinned to the first CPU; and, on the second CPU, load
processes of two kinds:

- the **quiet** caller: a checkout page's token, quoting the realistic cart at a steady
  ``--quiet-rate`` (an open loop: a slow answer does not slow its sending), measuring latency;
- the **noisy** caller: another token, ``--noisy-in-flight`` calls in flight in a closed loop,
  each a cart never priced before (no cache hit), honouring the RetryInfo of a refusal as a
  well-behaved client does. It runs at ``nice 19`` so that it cannot steal the quiet process's
  client CPU: what is measured is the server, not the load generator's core.

Cases, measured in alternating windows (the machines drift by +-20 % within seconds):
``quiet_alone_baseline`` (the quiet caller alone), ``quiet_alone_repeat_baseline`` (alone again,
as a case of its own: its "increase" over the baseline is the measurement's noise floor),
``quiet_with_noisy`` (the noisy token limited to ``--noisy-rate`` calls/s, 100 by default: the
issue's target), ``quiet_with_polite_noisy`` (the same token sending exactly its quota in an open
loop: the cost of its allowed work, so that ``quiet_with_noisy`` minus this is the cost of the
calls over the quota), ``quiet_with_heavier_noisy`` (limited to ``--heavier-noisy-rate``, 500: a
quota of ~30 % of what the server prices per second in distinct carts, where the noisy caller's
*allowed* work alone takes a third of the server's CPU), and ``quiet_with_unlimited_noisy`` (a
token with the server's default limit: what the limit protects against). The noisy caller
otherwise runs far over its limit: 64 calls in flight, ~2,000 calls/s when nothing holds it back.

Each increase is of the p99 over all of a case's windows against the p99 over both alone cases'
windows (the A/A case: against the first alone case only), with a 95 % bootstrap interval that
resamples whole windows: a stall of the virtual machine lifts one window's tail, so windows are
the independent draws. The target counts as met only if the interval's upper end is within it.

stdout: one JSON object per case (DESIGN.md §9); progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
QUOTE = "/billing.v1.RatingService/Quote"
TARGET_P99_INCREASE_PCT = 20
WATCHDOG_S = 480
BOOTSTRAP_RESAMPLES = 1000


def log(message: str) -> None:
    print(f"[bench/noisy_neighbour {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _pin(cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def _cpus() -> tuple[int | None, int | None]:
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[1]) if len(cpus) > 1 else (None, None)


def _cart(seats: int) -> bytes:
    """The realistic cart of bench/quote.py without its add-on (no catalog lookup needed)."""
    from billing.v1 import catalog_pb2, rating_pb2

    request = rating_pb2.QuoteRequest(currency="USD", seats=str(seats), coupon_codes=["LAUNCH20"])
    request.plan.lookup_key = "advanced-monthly"
    for channel, quantity in (("email", "3000"), ("whatsapp", "2500"), ("phone", "1200")):
        estimate = request.usage.add(meter="conversation.message", quantity=quantity)
        estimate.properties.append(catalog_pb2.PropertyFilter(key="channel", value=channel))
    estimate = request.usage.add(meter="ai_agent.conversation", quantity="400")
    estimate.properties.append(catalog_pb2.PropertyFilter(key="outcome", value="resolved"))
    return request.SerializeToString()


def _retry_delay_s(error: Any) -> float:
    from google.rpc import error_details_pb2, status_pb2

    details = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    if details:
        for detail in status_pb2.Status.FromString(details).details:
            retry = error_details_pb2.RetryInfo()
            if detail.Unpack(retry):
                return float(retry.retry_delay.ToMilliseconds()) / 1000
    return 0.1


# --- roles: the two callers, each in its own process ------------------------------------------


def quiet(args: argparse.Namespace) -> None:
    """Quote at a steady rate for ``--warmup-s`` then ``--measure-s``; print the latencies."""
    import grpc
    import uvloop

    _pin(args.cpu)
    metadata = (("authorization", f"Bearer {os.environ['BENCH_TOKEN']}"),)
    payload = _cart(25)

    async def run() -> dict[str, Any]:
        latencies: list[int] = []
        errors: list[str] = []
        async with grpc.aio.insecure_channel(args.target) as channel:
            stub = channel.unary_unary(QUOTE)
            await stub(payload, metadata=metadata, timeout=5)
            # A full collection of this process's start-up heap takes tens of milliseconds: a
            # stall of the load generator that would land in the server's latency figures.
            gc.collect()
            gc.freeze()

            async def one(record: bool) -> None:
                began = time.perf_counter_ns()
                try:
                    await stub(payload, metadata=metadata, timeout=5)
                except grpc.aio.AioRpcError as error:
                    errors.append(error.code().name)
                    return
                if record:
                    latencies.append(time.perf_counter_ns() - began)

            interval = 1 / args.quiet_rate
            started = time.perf_counter()
            measure_from = started + args.warmup_s
            end = measure_from + args.measure_s
            calls: set[asyncio.Task[None]] = set()
            sent = 0
            while (now := time.perf_counter()) < end:
                task = asyncio.create_task(one(now >= measure_from))
                calls.add(task)
                task.add_done_callback(calls.discard)
                sent += 1
                await asyncio.sleep(max(0.0, started + sent * interval - time.perf_counter()))
            await asyncio.gather(*calls)
        return {"latencies_ns": latencies, "errors": errors}

    print(json.dumps(uvloop.run(run())), flush=True)


def noisy(args: argparse.Namespace) -> None:
    """Closed loop of distinct carts until SIGTERM; then print served and refused counts."""
    import grpc
    import uvloop

    _pin(args.cpu)
    os.nice(19)
    metadata = (("authorization", f"Bearer {os.environ['BENCH_TOKEN']}"),)
    counts = {"served": 0, "refused": 0, "other_errors": 0}
    stop = asyncio.Event()

    async def run() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        channels = [
            grpc.aio.insecure_channel(args.target, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(2)
        ]
        stubs = [channel.unary_unary(QUOTE) for channel in channels]
        seats = iter(range(1_000, 1 << 40))

        async def worker(stub: Any, once: bool = False) -> None:
            while not stop.is_set():
                try:
                    await stub(_cart(next(seats)), metadata=metadata, timeout=5)
                    counts["served"] += 1
                except grpc.aio.AioRpcError as error:
                    if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                        counts["refused"] += 1
                        await asyncio.sleep(_retry_delay_s(error))
                    else:
                        counts["other_errors"] += 1
                if once:
                    return

        async def polite() -> None:
            # At its quota, in an open loop: never refused, never waiting in the server.
            calls: set[asyncio.Task[None]] = set()
            started, sent = time.perf_counter(), 0
            while not stop.is_set():
                task = asyncio.create_task(worker(stubs[sent % 2], once=True))
                calls.add(task)
                task.add_done_callback(calls.discard)
                sent += 1
                await asyncio.sleep(max(0.0, started + sent / args.polite_rate - time.perf_counter()))
            await asyncio.gather(*calls, return_exceptions=True)

        if args.polite_rate:
            workers = [asyncio.create_task(polite())]
        else:
            workers = [asyncio.create_task(worker(stubs[i % 2])) for i in range(args.noisy_in_flight)]
        started = time.perf_counter()
        await stop.wait()
        counts["seconds"] = time.perf_counter() - started  # type: ignore[assignment]
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        for channel in channels:
            await channel.close()

    uvloop.run(run())
    print(json.dumps(counts), flush=True)


# --- orchestration -----------------------------------------------------------------------------


@contextlib.contextmanager
def _database(workdir: Path, rates: dict[str, int]) -> Iterator[tuple[str, dict[str, str]]]:
    """A migrated, seeded database and the bench's tokens (name -> secret); removed after."""
    from billing.domain.api_tokens import TokenLimits
    from billing.store.api_tokens import PostgresTokenStore
    from billing.store.database import connect, create_pool, with_database
    from billing.store.embedded import EmbeddedPostgres
    from billing.store.migrate import migrate
    from billing.store.unit_of_work import PostgresUnitOfWork
    from rating.usecases.demo import seed_demo_catalog
    from rating.usecases.tokens import issue_token

    server_url = os.environ.get("DATABASE_URL", "").strip()
    embedded = None if server_url else EmbeddedPostgres(workdir / "pgdata").start()
    server_url = server_url or embedded.url  # type: ignore[union-attr]
    name = f"bench_noisy_{secrets.token_hex(4)}"
    url = with_database(server_url, name)

    async def admin(sql: str) -> None:
        connection = await connect(server_url)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    async def prepare() -> dict[str, str]:
        await admin(f'CREATE DATABASE "{name}"')
        await migrate(url)
        pool = await create_pool(url, min_size=1, max_size=1)
        try:
            async with PostgresUnitOfWork(pool) as uow:
                await seed_demo_catalog(uow)
                await uow.commit()
            store = PostgresTokenStore(pool)
            tokens = {
                "quiet": (await issue_token(store, "checkout", ["quote"])).secret,
                "unlimited": (await issue_token(store, "noisy-default", ["quote"])).secret,
            }
            for token_name, rate in rates.items():
                limited = TokenLimits(rate_per_second=rate, burst=max(1, rate // 10))
                tokens[token_name] = (await issue_token(store, token_name, ["quote"], limited)).secret
            return tokens
        finally:
            await pool.close()

    try:
        yield url, asyncio.run(prepare())
    finally:
        with contextlib.suppress(Exception):
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if embedded is not None:
            embedded.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_serving(target: str, server: subprocess.Popen[bytes]) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + 30
    with grpc.insecure_channel(target) as channel:
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the rating server exited with {server.returncode}")
            with contextlib.suppress(grpc.RpcError):
                check = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
                if check.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("the rating server is not SERVING after 30 s")
            time.sleep(0.1)


def _role(role: str, args: argparse.Namespace, cpu: int | None, polite_rate: int = 0) -> list[str]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--role", role, "--target", args.target]
    argv += ["--polite-rate", str(polite_rate)]
    argv += ["--quiet-rate", str(args.quiet_rate), "--noisy-in-flight", str(args.noisy_in_flight)]
    argv += ["--warmup-s", str(args.warmup_s), "--measure-s", str(args.measure_s)]
    return argv + (["--cpu", str(cpu)] if cpu is not None else [])


def _window(
    args: argparse.Namespace, tokens: dict[str, str], noisy: tuple[str, int] | None, cpu: int | None
) -> Any:
    """One measurement window: the quiet caller, with the noisy one running on ``noisy``'s token
    (and, if ``noisy`` gives a rate, sending at that rate instead of flooding)."""
    noisy_process = None
    if noisy:
        noisy_token, polite_rate = noisy
        noisy_process = subprocess.Popen(
            _role("noisy", args, cpu, polite_rate),
            env={**os.environ, "BENCH_TOKEN": tokens[noisy_token]},
            stdout=subprocess.PIPE,
        )
        time.sleep(1.0)  # imports, connections, the server's queue at its steady state
    quiet_run = subprocess.run(
        _role("quiet", args, cpu),
        env={**os.environ, "BENCH_TOKEN": tokens["quiet"]},
        stdout=subprocess.PIPE,
        check=True,
        timeout=60,
    )
    noisy_counts = None
    if noisy_process is not None:
        noisy_process.send_signal(signal.SIGTERM)
        out, _ = noisy_process.communicate(timeout=30)
        noisy_counts = json.loads(out)
    return json.loads(quiet_run.stdout), noisy_counts


def _percentile(values: list[int], p: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, len(ordered) * p // 100)] / 1e6


def _increase_pct(baseline: list[list[int]], case: list[list[int]]) -> float:
    """How much higher the case's p99 is than the baseline's, over all their windows' calls."""
    pooled = [[latency for window in windows for latency in window] for windows in (baseline, case)]
    return 100 * (_percentile(pooled[1], 99) / _percentile(pooled[0], 99) - 1)


def _increase_ci95(
    baseline: list[list[int]], case: list[list[int]], rng: random.Random
) -> tuple[float, float]:
    """A 95 % interval of ``_increase_pct``: both sides resampled by whole windows.

    A stall of the virtual machine lands in one window and lifts that window's tail: windows,
    not single calls, are the independent draws, so they are what the bootstrap resamples."""
    increases = sorted(
        _increase_pct(rng.choices(baseline, k=len(baseline)), rng.choices(case, k=len(case)))
        for _ in range(BOOTSTRAP_RESAMPLES)
    )
    return increases[BOOTSTRAP_RESAMPLES * 25 // 1000], increases[BOOTSTRAP_RESAMPLES * 975 // 1000 - 1]


def orchestrate(args: argparse.Namespace) -> int:
    server_cpu, client_cpu = _cpus()
    cases = {
        "quiet_alone_baseline": None,
        # The same as the baseline, measured as another case: the "increase" it shows is the
        # noise floor of this measurement on this machine (a stall of the VM lands in one case's
        # windows and not the other's), to read the other cases' increases against.
        "quiet_alone_repeat_baseline": None,
        "quiet_with_noisy": ("noisy", 0),
        # The same token sending only what its quota allows, in an open loop: what the noisy
        # caller's *allowed* work costs the quiet one (capacity). What quiet_with_noisy adds to
        # it is the cost of the calls over the quota (isolation).
        "quiet_with_polite_noisy": ("noisy", args.noisy_rate),
        "quiet_with_heavier_noisy": ("heavier-noisy", 0),
        "quiet_with_unlimited_noisy": ("unlimited", 0),
    }
    rates = {"noisy": args.noisy_rate, "heavier-noisy": args.heavier_noisy_rate}
    results: dict[str, list[Any]] = {case: [] for case in cases}
    with (
        tempfile.TemporaryDirectory(prefix="bench-noisy-") as workdir,
        _database(Path(workdir), rates) as (url, tokens),
    ):
        port = _free_port()
        args.target = f"127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "billing.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env={
                **os.environ,
                "DATABASE_URL": url,
                "BILLING_LOG_FORMAT": "json",
                "BILLING_LOG_LEVEL": "INFO",
            },
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=lambda: _pin(server_cpu),
        )
        try:
            _wait_serving(args.target, server)
            log(
                f"server on {args.target} (CPU {server_cpu}), callers on CPU {client_cpu}; "
                f"{args.rounds} rounds"
            )
            for round_ in range(args.rounds):
                order = list(cases) if round_ % 2 == 0 else list(reversed(cases))
                for case in order:
                    results[case].append(_window(args, tokens, cases[case], client_cpu))
                    log(f"round {round_ + 1}: {case} done")
        finally:
            server.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(timeout=20)
            if server.poll() is None:
                server.kill()
    alone = [quiet_result["latencies_ns"] for quiet_result, _ in results["quiet_alone_baseline"]]
    repeat = [quiet_result["latencies_ns"] for quiet_result, _ in results["quiet_alone_repeat_baseline"]]
    rng = random.Random(0)  # the interval's resampling is reproducible for the same latencies
    for case, windows in results.items():
        latencies = [latency for quiet_result, _ in windows for latency in quiet_result["latencies_ns"]]
        window_p99s = [round(_percentile(q["latencies_ns"], 99), 3) for q, _ in windows]
        row: dict[str, Any] = {
            "bench": "noisy_neighbour",
            "case": case,
            "quiet_calls_per_s": round(len(latencies) / (args.measure_s * len(windows))),
            "p50_ms": round(_percentile(latencies, 50), 3),
            "p99_ms": round(_percentile(latencies, 99), 3),
            "window_p99_ms": window_p99s,
            "quiet_errors": sum(len(q["errors"]) for q, _ in windows),
        }
        if case != "quiet_alone_baseline":
            # The A/A case against the first; every other case against both alone cases' windows.
            baseline = alone if case == "quiet_alone_repeat_baseline" else alone + repeat
            row["p99_increase_pct"] = round(
                _increase_pct(baseline, [q["latencies_ns"] for q, _ in windows]), 1
            )
            low, high = _increase_ci95(baseline, [q["latencies_ns"] for q, _ in windows], rng)
            row["p99_increase_ci95_pct"] = [round(low, 1), round(high, 1)]
        if case == "quiet_with_noisy":
            row["target_p99_increase_pct"] = TARGET_P99_INCREASE_PCT
            row["meets_target"] = row["p99_increase_ci95_pct"][1] <= TARGET_P99_INCREASE_PCT
        if cases[case] is not None:
            seconds = sum(n["seconds"] for _, n in windows)
            row["noisy_served_per_s"] = round(sum(n["served"] for _, n in windows) / seconds)
            row["noisy_refused_per_s"] = round(sum(n["refused"] for _, n in windows) / seconds)
            row["noisy_other_errors"] = sum(n["other_errors"] for _, n in windows)
            token, polite_rate = cases[case] or ("", 0)
            row["noisy_rate_limit_per_s"] = rates.get(token, "default")
            row["noisy_sends"] = f"{polite_rate}/s" if polite_rate else f"{args.noisy_in_flight} in flight"
        print(json.dumps(row), flush=True)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=("bench", "quiet", "noisy"), default="bench")
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=10, help="windows per case, alternating")
    parser.add_argument("--warmup-s", type=float, default=0.5)
    parser.add_argument("--measure-s", type=float, default=3.0)
    parser.add_argument("--quiet-rate", type=int, default=300, help="the quiet caller's calls/s")
    parser.add_argument("--noisy-in-flight", type=int, default=64)
    parser.add_argument("--polite-rate", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--noisy-rate", type=int, default=100, help="the noisy token's rate limit")
    parser.add_argument("--heavier-noisy-rate", type=int, default=500, help="the heavier one's")
    return parser


def main() -> int:
    args = _parser().parse_args()
    if args.role == "quiet":
        quiet(args)
    elif args.role == "noisy":
        noisy(args)
    else:
        signal.signal(signal.SIGALRM, lambda *_: sys.exit(f"watchdog: over {WATCHDOG_S} s"))
        signal.alarm(WATCHDOG_S)
        return orchestrate(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
