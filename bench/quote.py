"""Quote benchmark (DESIGN.md §9): live quotes per second against a no-op grpc.aio baseline.

    python bench/quote.py            # from the repo root; ``make bench`` runs it too

What runs, all in one invocation (about 90 s, capped by a watchdog):

- a database: a fresh ``bench_<hex>`` on the ``DATABASE_URL`` server (dropped at the end), or an
  embedded PostgreSQL in a temporary folder when ``DATABASE_URL`` is unset; migrated and seeded
  with the demo catalog;
- the real rating server, ``python -m billing.cli serve`` (uvloop, structlog JSON at INFO, every
  call authenticated by a bearer token with the ``quote`` scope: the production configuration),
  pinned to the first CPU;
- the baseline: a bare grpc.aio server (uvloop) whose ``RatingService.Quote`` returns an empty
  ``QuoteResponse``, in its own process, pinned to the same CPU; it receives the same token
  header and ignores it;
- the load generator, in its own process pinned to the second CPU: grpc.aio with uvloop, a fixed
  number of calls in flight over a few channels per server. It sends the same pre-serialized
  realistic cart to both servers and does not decode the answers, to keep its own cost per call
  low; it reports its CPU use and the servers', so one can see that a server is the limit.
  The servers are measured alternately (ABBA) in several short windows after a warm-up, because
  the rate of these virtual machines drifts by +-20 % within seconds; each case pools its windows.

Then both servers again, the cached cart only, sent at a fixed rate in an open loop (half the
rate the no-op server reached): ``realistic_cart_paced`` and ``noop_baseline_paced``, the
latency a caller sees below saturation, where a closed loop's latency is mostly its own queue.

Before measuring, the real server's answer to the cart is checked against hand-computed amounts.

stdout: one JSON object per line per case (DESIGN.md §9), nothing else; progress goes to stderr.
``--py-spy BIN --profile-out FILE`` also records the real server with py-spy during the first
window of ``--profile-case`` (the cached cart by default, or the distinct one).
The roles ``noop-server`` and ``client`` are this same file run with ``--role``.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import secrets
import shutil
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
VENV = REPO / ".venv"

# Calls in flight: the smallest number that still gets the no-op server to its plateau rate on
# these 2-core machines (8: ~15 % below it; 16 and 32: the same rate). In a closed loop the mean
# latency is concurrency / rate (Little's law), so 32 in flight would put even the no-op server's
# p99 near 10 ms, and "p99 <= 5 ms at 5,000/s" could not be met by any server; 16 can.
DEFAULT_CONCURRENCY = 16
DEFAULT_CHANNELS = 2
DEFAULT_ROUNDS = 5
DEFAULT_WARMUP_S = 2.0
DEFAULT_ROUND_WARMUP_S = 0.5
DEFAULT_MEASURE_S = 2.5
WATCHDOG_S = 60
# The paced cases send at this share of the rate the no-op server reached in the same run.
PACED_SHARE = 0.5
CALL_TIMEOUT_S = 5.0
QUOTE_METHOD = "/billing.v1.RatingService/Quote"

# The cart: seats of a plan, per-channel usage with tiers, outcome-based AI usage, an add-on
# and a coupon. Expected amounts (USD cents), from src/rating/usecases/demo.py by hand:
#   seats     25 x 4900                                   = 122500, LAUNCH20 takes 20% = 24500
#   email     3000: 1000 x 0 + 2000 x 0.5 (graduated)     =   1000
#   whatsapp  2500: 1000 x 2.5 + 1500 x 1.8 (graduated)   =   5200
#   phone     1200 minutes, all at 3 (volume, 2nd tier)   =   3600
#   sms       not estimated, still a plan line            =      0
#   AI        400 resolved conversations x 99             =  39600
#   add-on    Advanced analytics                          =   2900
PLAN = "advanced-monthly"
SEATS = "25"
USAGE = (
    ("conversation.message", (("channel", "email"),), "3000"),
    ("conversation.message", (("channel", "whatsapp"),), "2500"),
    ("conversation.message", (("channel", "phone"),), "1200"),
    ("ai_agent.conversation", (("outcome", "resolved"),), "400"),
)
ADD_ON_DISPLAY_NAME = "Advanced analytics"
COUPON = "LAUNCH20"
EXPECTED_LINES = 7  # seat, five usage prices of the plan, one add-on
EXPECTED_SUBTOTAL = 122500 + 1000 + 5200 + 3600 + 39600 + 2900
EXPECTED_DISCOUNT = 24500


def log(message: str) -> None:
    print(f"[bench/quote {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _ensure_venv() -> None:
    """``python bench/quote.py`` with another interpreter: re-run with the project's venv."""
    try:
        import grpc  # noqa: F401

        import billing  # noqa: F401
    except ImportError:
        python = VENV / "bin" / "python"
        if Path(sys.prefix).resolve() != VENV.resolve() and python.exists():
            os.execv(python, [str(python), *sys.argv])
        raise


# --- child process setup ---------------------------------------------------------------------


def _die_with_parent() -> None:
    """Linux: get SIGTERM when the parent dies, so no child outlives a killed benchmark."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _pin(cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def _child_setup(cpu: int | None) -> None:
    """For our own roles, before grpc is imported so that its threads inherit the affinity."""
    _pin(cpu)
    _die_with_parent()


def _cpu_seconds_of(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- role: no-op baseline server -------------------------------------------------------------


def noop_server(args: argparse.Namespace) -> None:
    _child_setup(args.cpu)
    import asyncio

    import grpc
    import uvloop

    from billing.v1 import rating_pb2, rating_pb2_grpc

    class NoopRating(rating_pb2_grpc.RatingServiceServicer):
        async def Quote(self, request: Any, context: Any) -> Any:
            return rating_pb2.QuoteResponse()

    async def serve() -> None:
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        rating_pb2_grpc.add_RatingServiceServicer_to_server(NoopRating(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        print(port, flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()
        await server.stop(1.0)

    uvloop.run(serve())


# --- role: load generator --------------------------------------------------------------------


def client(args: argparse.Namespace) -> None:
    """Alternates measurement windows between the targets; prints JSON events, then the results.

    ``{"event": "measuring", "target": i, "round": r}`` when a window opens, then one
    ``{"event": "result", "targets": [...]}``. Each target keeps its own channels for the whole
    run; a round runs the same number of calls in flight against one target at a time, so the
    servers are measured alternately (ABBA order) and slow drift of the machine affects both alike.
    """
    _child_setup(args.cpu)
    import asyncio
    import resource

    import grpc
    import uvloop

    payload = bytes.fromhex(args.request_hex)
    # Every call carries the checkout token (the no-op server gets it too, and ignores it).
    metadata = _bearer(os.environ[TOKEN_ENV])
    targets = args.target.split(",")
    pids = [int(pid) for pid in args.server_pid.split(",")]
    varied = [flag == "1" for flag in args.vary.split(",")]
    counter = itertools.count(1)

    def distinct_cart() -> bytes:
        # Protobuf keeps the last value of a repeated scalar field, so appending field 4 (seats)
        # makes every call a cart the server has never priced: no answer can come from a cache.
        seats = str(1000 + next(counter)).encode()
        return payload + b"\x22" + bytes([len(seats)]) + seats

    def emit(obj: dict[str, Any]) -> None:
        print(json.dumps(obj), flush=True)

    def cpu_s() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    async def measure(
        stubs: list[Any], warmup_s: float, server_pid: int, on_open: Any, vary: bool
    ) -> dict[str, Any]:
        window = [1 << 62, 1 << 62]
        latencies: list[int] = []
        errors: list[str] = []
        stop = False

        async def call(stub: Any) -> None:
            body = distinct_cart() if vary else payload
            began = time.perf_counter_ns()
            try:
                await stub(body, timeout=CALL_TIMEOUT_S, metadata=metadata)
            except grpc.aio.AioRpcError as error:
                errors.append(f"{error.code().name}: {error.details()}")
                return
            ended = time.perf_counter_ns()
            if window[0] <= ended < window[1]:
                latencies.append(ended - began)

        async def worker(stub: Any) -> None:
            while not stop:
                await call(stub)

        async def paced() -> None:
            # An open loop, as from many browsers: calls go out at the rate whatever the answers do.
            calls: set[asyncio.Task[None]] = set()
            started, sent = time.perf_counter(), 0
            while not stop:
                task = asyncio.create_task(call(stubs[sent % len(stubs)]))
                calls.add(task)
                task.add_done_callback(calls.discard)
                sent += 1
                await asyncio.sleep(max(0.0, started + sent / args.paced_rate - time.perf_counter()))
            await asyncio.gather(*calls)

        if args.paced_rate:
            workers = [asyncio.create_task(paced())]
        else:
            workers = [asyncio.create_task(worker(stubs[i % len(stubs)])) for i in range(args.concurrency)]
        await asyncio.sleep(warmup_s)
        client_before, server_before = cpu_s(), _cpu_seconds_of(server_pid)
        window[0] = time.perf_counter_ns()
        window[1] = window[0] + int(args.measure_s * 1e9)
        on_open()
        await asyncio.sleep(args.measure_s)
        elapsed_s = (time.perf_counter_ns() - window[0]) / 1e9
        client_cpu_s, server_cpu_s = cpu_s() - client_before, _cpu_seconds_of(server_pid) - server_before
        stop = True
        await asyncio.gather(*workers)
        return {
            "latencies": latencies,
            "errors": errors,
            "window_s": args.measure_s,  # calls are counted when they end inside the window
            "elapsed_s": elapsed_s,
            "client_cpu_s": client_cpu_s,
            "server_cpu_s": server_cpu_s,
        }

    async def run() -> list[dict[str, Any]]:
        channels = [
            [
                # A local subchannel pool gives every channel its own HTTP/2 connection.
                grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(args.channels)
            ]
            for target in targets
        ]
        for group in channels:
            for channel in group:
                await asyncio.wait_for(channel.channel_ready(), 10)
        # No serializers: the request goes out as bytes and answers are not decoded.
        stubs = [[channel.unary_unary(QUOTE_METHOD) for channel in group] for group in channels]
        windows: list[list[dict[str, Any]]] = [[] for _ in targets]
        for round_ in range(args.rounds):
            order = list(range(len(targets)))
            if round_ % 2:
                order.reverse()
            for index in order:
                warmup_s = args.warmup_s if round_ == 0 else args.round_warmup_s

                def opened(index: int = index, round_: int = round_) -> None:
                    emit({"event": "measuring", "target": index, "round": round_})

                windows[index].append(
                    await measure(stubs[index], warmup_s, pids[index], opened, varied[index])
                )
        for group in channels:
            for channel in group:
                await channel.close()
        return [_summarize(w) for w in windows]

    emit({"event": "result", "targets": uvloop.run(run())})


def _summarize(windows: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = sorted(latency for w in windows for latency in w["latencies"])
    errors = [error for w in windows for error in w["errors"]]
    window_s = sum(w["window_s"] for w in windows)
    elapsed_s = sum(w["elapsed_s"] for w in windows)
    count = len(latencies)

    def percentile(p: int) -> float | None:
        return latencies[min(count - 1, (count * p) // 100)] / 1e6 if count else None

    return {
        "calls": count,
        "rate_per_s": count / window_s,
        "round_rates_per_s": [round(len(w["latencies"]) / w["window_s"]) for w in windows],
        "p50_ms": percentile(50),
        "p99_ms": percentile(99),
        "max_ms": latencies[-1] / 1e6 if count else None,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "client_cpu_pct": 100 * sum(w["client_cpu_s"] for w in windows) / elapsed_s,
        "server_cpu_pct": 100 * sum(w["server_cpu_s"] for w in windows) / elapsed_s,
    }


# --- orchestration ---------------------------------------------------------------------------


class Watchdog(Exception):
    pass


def _arm_watchdog(seconds: int) -> None:
    def on_alarm(signum: int, frame: Any) -> None:
        raise Watchdog(f"no result within {seconds} s: stopped everything")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)


def _on_term(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _cpus() -> tuple[int | None, int | None]:
    """(server CPU, client CPU): the first two this process may use."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(allowed) < 2:
        log(f"only {len(allowed) or 'unknown'} CPU(s) available: not pinning (numbers not comparable)")
        return None, None
    return allowed[0], allowed[1]


class Processes:
    """Every child we start, stopped (SIGTERM, then SIGKILL) in reverse order at exit."""

    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen[bytes], float]] = []

    def start(
        self, name: str, argv: list[str], *, grace_s: float = 5.0, **kwargs: Any
    ) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(argv, **kwargs)
        self.children.append((name, process, grace_s))
        return process

    def stop_all(self) -> None:
        for name, process, grace_s in reversed(self.children):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(grace_s)
                except subprocess.TimeoutExpired:
                    log(f"{name} did not stop within {grace_s} s: killing it")
                    process.kill()
                    process.wait()
        self.children.clear()


RUN_PREFIX = "bench-quote-"
OWNER_FILE = "owner.json"


async def _admin(admin_url: str, sql: str) -> None:
    from billing.store.database import connect

    connection = await connect(admin_url)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_killed_runs() -> None:
    """Remove what a run killed with SIGKILL left behind: its embedded PostgreSQL (still running,
    see billing.store.embedded), its folder, or its database on the ``DATABASE_URL`` server."""
    import asyncio

    from billing.store.embedded import EmbeddedPostgres

    admin_url = os.environ.get("DATABASE_URL", "").strip()
    for folder in Path(tempfile.gettempdir()).glob(f"{RUN_PREFIX}*"):
        try:
            owner = json.loads((folder / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not a run of this benchmark, or one still starting
        if _alive(int(owner["pid"])):
            continue
        try:
            if (folder / "pgdata").is_dir():
                # Joining an orphaned server and letting go of it stops it.
                EmbeddedPostgres(folder / "pgdata").start().stop()
            elif admin_url:
                asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{owner["database"]}" WITH (FORCE)'))
            else:
                continue  # its database is on a server this run was not given
        except Exception as error:
            log(f"could not clean up {folder}: {type(error).__name__}: {error}")
            continue
        shutil.rmtree(folder, ignore_errors=True)
        log(f"cleaned up after a killed run: {folder}")


@contextlib.contextmanager
def database(workdir: Path, name: str) -> Iterator[str]:
    """A migrated, seeded database ``name``; dropped (or its embedded server stopped) after."""
    import asyncio

    from billing.store.database import DATABASE_URL_ENV, create_pool, with_database
    from billing.store.embedded import EmbeddedPostgres
    from billing.store.migrate import migrate
    from billing.store.unit_of_work import PostgresUnitOfWork
    from rating.usecases.demo import seed_demo_catalog

    admin_url = os.environ.get(DATABASE_URL_ENV, "").strip()
    embedded = None
    if not admin_url:
        embedded = EmbeddedPostgres(workdir / "pgdata").start()
        admin_url = embedded.url
        log(f"embedded PostgreSQL in {embedded.data_dir}")
    url = with_database(admin_url, name)

    async def admin(sql: str) -> None:
        await _admin(admin_url, sql)

    async def prepare() -> None:
        await admin(f'CREATE DATABASE "{name}"')
        await migrate(url)
        pool = await create_pool(url, min_size=1, max_size=1)
        try:
            async with PostgresUnitOfWork(pool) as uow:
                assert await seed_demo_catalog(uow), "the fresh database already had a catalog"
                await uow.commit()
        finally:
            await pool.close()

    try:
        asyncio.run(prepare())
        log(f"database {name} migrated and seeded")
        yield url
    finally:
        try:
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            log(f"database {name} dropped")
        except Exception as error:  # do not hide why the run failed, if it did
            log(f"could not drop database {name}: {type(error).__name__}: {error}")
        finally:
            if embedded is not None:
                embedded.stop()


def _self(role: str, *extra: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--role", role, *extra]


def start_real_server(
    procs: Processes, url: str, cpu: int | None, logfile: Path
) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "BILLING_LOG_FORMAT": "json",
        "BILLING_LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    with logfile.open("wb") as sink:
        process = procs.start(
            "rating server",
            [sys.executable, "-m", "billing.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            grace_s=15.0,
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            # Safe here: this process has no threads yet (grpc is used only after this).
            preexec_fn=lambda: _child_setup(cpu),
        )
    return process, port


def start_noop_server(procs: Processes, cpu: int | None) -> tuple[int, int]:
    process = procs.start(
        "no-op server",
        _self("noop-server", *(["--cpu", str(cpu)] if cpu is not None else [])),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode().strip()
    if not line.isdigit():
        raise RuntimeError(f"the no-op server did not report its port (got {line!r})")
    return process.pid, int(line)


def wait_serving(target: str, server: subprocess.Popen[bytes], logfile: Path, timeout_s: float) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the rating server exited ({server.returncode}):\n{_tail(logfile)}")
            try:
                answer = health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"not SERVING after {timeout_s} s:\n{_tail(logfile)}")
            time.sleep(0.1)


def _is_problem(line: str) -> bool:
    """A JSON log line above INFO (the server's plain-text banner is not one)."""
    try:
        entry = json.loads(line)
    except ValueError:
        return False
    return isinstance(entry, dict) and entry.get("level") not in ("debug", "info")


def _tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


TOKEN_ENV = "BENCH_QUOTE_TOKEN"


async def issue_tokens(url: str, *scopes: str) -> list[str]:
    """One fresh token per scope (bench/ingest.py uses it too); the secrets, in that order."""
    from billing.store.api_tokens import PostgresTokenStore
    from billing.store.database import create_pool
    from rating.usecases.tokens import issue_token

    pool = await create_pool(url, min_size=1, max_size=1)
    try:
        store = PostgresTokenStore(pool)
        return [
            (
                await issue_token(store, f"bench-{scope.replace(':', '-')}-{secrets.token_hex(4)}", [scope])
            ).secret
            for scope in scopes
        ]
    finally:
        await pool.close()


def _bearer(secret: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {secret}"),)


def build_request(target: str, token: str) -> bytes:
    """The realistic cart, with the add-on id looked up on the real server."""
    import grpc

    from billing.v1 import catalog_pb2, catalog_pb2_grpc, rating_pb2

    with grpc.insecure_channel(target) as channel:
        addons = catalog_pb2_grpc.CatalogServiceStub(channel).ListAddOns(
            catalog_pb2.ListAddOnsRequest(page_size=100), timeout=5, metadata=_bearer(token)
        )
    by_name = {addon.display_name: addon.name for addon in addons.add_ons}
    if ADD_ON_DISPLAY_NAME not in by_name:
        raise RuntimeError(f"no add-on {ADD_ON_DISPLAY_NAME!r} in the catalog (found {sorted(by_name)})")
    request = rating_pb2.QuoteRequest(
        currency="USD", seats=SEATS, add_ons=[by_name[ADD_ON_DISPLAY_NAME]], coupon_codes=[COUPON]
    )
    request.plan.lookup_key = PLAN
    for meter, properties, quantity in USAGE:
        estimate = request.usage.add(meter=meter, quantity=quantity)
        for key, value in properties:
            estimate.properties.append(catalog_pb2.PropertyFilter(key=key, value=value))
    return request.SerializeToString()


def verify_quote(target: str, payload: bytes, token: str) -> None:
    """The real server prices the cart, to the cent, before anything is measured."""
    import grpc

    from billing.v1 import rating_pb2, rating_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        stub = rating_pb2_grpc.RatingServiceStub(channel)
        request = rating_pb2.QuoteRequest.FromString(payload)
        quote = stub.Quote(request, timeout=5, metadata=_bearer(token)).quote
    got = (len(quote.lines), quote.subtotal, quote.discount_total, quote.total)
    want = (EXPECTED_LINES, EXPECTED_SUBTOTAL, EXPECTED_DISCOUNT, EXPECTED_SUBTOTAL - EXPECTED_DISCOUNT)
    assert quote.total > 0, f"empty quote: {quote}"
    assert got == want, f"(lines, subtotal, discount, total) = {got}, expected {want}"
    assert quote.currency == "USD"
    assert sum(line.total for line in quote.lines) == quote.total
    assert any(line.tiers for line in quote.lines), "no tier breakdown in the quote"
    log(f"verified quote: {len(quote.lines)} lines, total {quote.total} USD cents")


def run_client(
    procs: Processes,
    args: argparse.Namespace,
    cpu: int | None,
    servers: list[tuple[str, int, bool]],
    payload: bytes,
    token: str,
    on_measuring: Any,
    paced_rate: int = 0,
) -> list[dict[str, Any]]:
    argv = _self(
        "client",
        "--target",
        ",".join(target for target, _, _ in servers),
        "--server-pid",
        ",".join(str(pid) for _, pid, _ in servers),
        "--request-hex",
        payload.hex(),
        "--vary",
        ",".join("1" if vary else "0" for _, _, vary in servers),
        "--concurrency",
        str(args.concurrency),
        "--channels",
        str(args.channels),
        "--rounds",
        str(args.rounds),
        "--warmup-s",
        str(args.warmup_s),
        "--round-warmup-s",
        str(args.round_warmup_s),
        "--measure-s",
        str(args.measure_s),
        "--paced-rate",
        str(paced_rate),
        *(["--cpu", str(cpu)] if cpu is not None else []),
    )
    process = procs.start(
        "load generator",
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        env={**os.environ, TOKEN_ENV: token},
    )
    assert process.stdout is not None
    results: list[dict[str, Any]] | None = None
    for raw in process.stdout:
        event = json.loads(raw)
        if event["event"] == "measuring":
            on_measuring(event["target"], event["round"])
        elif event["event"] == "result":
            results = event["targets"]
    if process.wait() != 0 or results is None:
        raise RuntimeError(f"the load generator failed (exit {process.returncode})")
    for (target, _, _), result in zip(servers, results, strict=True):
        if result["errors"]:
            raise RuntimeError(f"{target}: {result['errors']} calls failed, first: {result['first_error']}")
        if not result["calls"]:
            raise RuntimeError(f"{target}: no call completed in the measurement windows")
        log(
            f"{target}: {result['rate_per_s']:.0f}/s (rounds {result['round_rates_per_s']}) "
            f"p50 {result['p50_ms']:.2f} ms p99 {result['p99_ms']:.2f} ms max {result['max_ms']:.1f} ms; "
            f"server CPU {result['server_cpu_pct']:.0f}%, client CPU {result['client_cpu_pct']:.0f}%"
        )
    return results


# The client's target index of each case the real server serves (see ``orchestrate``).
PROFILED = {"realistic_cart": 0, "realistic_cart_distinct": 1}


def _py_spy_argv(args: argparse.Namespace, pid: int) -> list[str]:
    """py-spy over one measurement window of the rating server, as collapsed stacks."""
    duration_s = str(max(1, int(args.measure_s)))
    options = f"--duration {duration_s} --rate 250 --nonblocking --format raw".split()
    return [args.py_spy, "record", "--pid", str(pid), *options, "--output", args.profile_out]


def _case(
    case: str, rate_key: str, result: dict[str, Any], args: argparse.Namespace, paced_rate: int = 0
) -> dict[str, Any]:
    load = {"sent_per_s": paced_rate} if paced_rate else {"concurrency": args.concurrency}
    return {
        "bench": "quote",
        "case": case,
        rate_key: round(result["rate_per_s"]),
        "p50_ms": round(result["p50_ms"], 2),
        "p99_ms": round(result["p99_ms"], 2),
        **load,
        "channels": args.channels,
        "rounds": args.rounds,
        "server_cpu_pct": round(result["server_cpu_pct"]),
        "client_cpu_pct": round(result["client_cpu_pct"]),
    }


def orchestrate(args: argparse.Namespace) -> int:
    import asyncio

    load_s = args.rounds * 5 * (args.round_warmup_s + args.measure_s) + 5 * args.warmup_s
    signal.signal(signal.SIGTERM, _on_term)
    _arm_watchdog(max(WATCHDOG_S, int(load_s + 45)))
    server_cpu, client_cpu = _cpus()
    procs = Processes()
    workdir = Path(tempfile.mkdtemp(prefix=RUN_PREFIX))
    server_log = workdir / "rating-server.log"
    name = f"bench_{secrets.token_hex(4)}"
    (workdir / OWNER_FILE).write_text(json.dumps({"pid": os.getpid(), "database": name}))
    try:
        reap_killed_runs()
        with database(workdir, name) as url:
            try:
                # Issued before the server starts, so it loads them with everything else.
                reader_token, checkout_token = asyncio.run(issue_tokens(url, "billing:read", "quote"))
                real_server, real_port = start_real_server(procs, url, server_cpu, server_log)
                noop_pid, noop_port = start_noop_server(procs, server_cpu)
                real, noop = f"127.0.0.1:{real_port}", f"127.0.0.1:{noop_port}"
                wait_serving(real, real_server, server_log, timeout_s=20)
                log(f"rating server SERVING on {real} (pid {real_server.pid}), no-op server on {noop}")
                payload = build_request(real, reader_token)
                verify_quote(real, payload, checkout_token)
                log(
                    f"load: {args.concurrency} calls in flight over {args.channels} channels; "
                    f"{args.rounds} rounds of {args.measure_s:g} s per server, alternating; "
                    f"servers on CPU {server_cpu}, load generator on CPU {client_cpu}"
                )

                def on_measuring(target: int, round_: int) -> None:
                    if args.py_spy and target == PROFILED[args.profile_case] and round_ == 0:
                        procs.start(
                            "py-spy",
                            _py_spy_argv(args, real_server.pid),
                            stdin=subprocess.DEVNULL,
                            stdout=sys.stderr,
                            stderr=sys.stderr,
                        )

                quoted, distinct, baseline = run_client(
                    procs,
                    args,
                    client_cpu,
                    [(real, real_server.pid, False), (real, real_server.pid, True), (noop, noop_pid, False)],
                    payload,
                    checkout_token,
                    on_measuring,
                )
                # Latency below saturation: both servers at half the rate the no-op one reached.
                paced_rate = round(baseline["rate_per_s"] * PACED_SHARE)
                log(f"paced: {paced_rate} calls/s to each server in turn, an open loop")
                paced, paced_baseline = run_client(
                    procs,
                    args,
                    client_cpu,
                    [(real, real_server.pid, False), (noop, noop_pid, False)],
                    payload,
                    checkout_token,
                    lambda target, round_: None,
                    paced_rate,
                )
                problems = [line for line in _tail(server_log, 1000).splitlines() if _is_problem(line)]
                if problems:
                    log("the rating server logged:\n" + "\n".join(problems[-20:]))
            finally:
                # Stop the servers before their database is dropped (or the embedded one stops).
                signal.alarm(0)
                procs.stop_all()
    finally:
        signal.alarm(0)
        procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)

    lines = [
        # The same cart again and again, as a checkout page asks: answered from the quote cache.
        _case("realistic_cart", "quotes_per_s", quoted, args),
        # Every call a cart never priced before: the full pricing path, no cache.
        _case("realistic_cart_distinct", "quotes_per_s", distinct, args),
        _case("noop_baseline", "calls_per_s", baseline, args),
        {
            "bench": "quote",
            "case": "ratio_to_baseline",
            "ratio_pct": round(100 * quoted["rate_per_s"] / baseline["rate_per_s"], 1),
            "distinct_ratio_pct": round(100 * distinct["rate_per_s"] / baseline["rate_per_s"], 1),
        },
        # The same cart, sent at a fixed rate (open loop) rather than as fast as answers come:
        # the latency a caller sees when the server is not saturated.
        _case("realistic_cart_paced", "quotes_per_s", paced, args, paced_rate),
        _case("noop_baseline_paced", "calls_per_s", paced_baseline, args, paced_rate),
    ]
    for line in lines:
        print(json.dumps(line), flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=("bench", "noop-server", "client"), default="bench")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="calls in flight")
    parser.add_argument(
        "--channels", type=int, default=DEFAULT_CHANNELS, help="HTTP/2 connections per server"
    )
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="measurement windows per server")
    parser.add_argument(
        "--warmup-s", type=float, default=DEFAULT_WARMUP_S, help="before a server's first window"
    )
    parser.add_argument(
        "--round-warmup-s", type=float, default=DEFAULT_ROUND_WARMUP_S, help="before later ones"
    )
    parser.add_argument("--measure-s", type=float, default=DEFAULT_MEASURE_S, help="one window")
    parser.add_argument("--py-spy", metavar="BIN", help="record the rating server's first window with py-spy")
    parser.add_argument("--profile-out", default="quote-profile.txt", help="py-spy raw (collapsed) output")
    parser.add_argument("--profile-case", choices=sorted(PROFILED), default="realistic_cart")
    parser.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--paced-rate", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", help=argparse.SUPPRESS)
    parser.add_argument("--request-hex", help=argparse.SUPPRESS)
    parser.add_argument("--vary", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "noop-server":
        noop_server(args)
        return 0
    if args.role == "client":
        client(args)
        return 0
    _ensure_venv()
    try:
        return orchestrate(args)
    except (Watchdog, RuntimeError, AssertionError, OSError) as error:
        log(f"FAILED: {type(error).__name__}: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
