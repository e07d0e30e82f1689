"""Period-close benchmark (DESIGN.md §9, issue 5): invoices per second of ONE invoicer worker process.

    python bench/close.py [--subscriptions 3000] [--warm-up 500]   # from the repo root; also make bench

What runs, in one invocation:

- a database: a fresh ``bench_<hex>`` on the ``DATABASE_URL`` server (dropped at the end), or an
  embedded PostgreSQL in a temporary folder when ``DATABASE_URL`` is unset; migrated;
- realistic periods, each a close of its own: a plan with a seat price and three usage prices
  (graduated on email messages, per-unit on SMS, volume tiers on resolved conversations, each
  filtered by a property), an add-on, a 20 % coupon, a pending proration line (a seat increase in
  the period) and German VAT; usage events in every window;
- this process is the worker: the production ``run_invoicer`` (uvloop, structlog JSON at INFO,
  telemetry configured as ``python -m invoicer`` does it,
  its default concurrency), timed per close from its claim to its commit (``invoicer.usecases.periods.
  work_on``); the grace window is one hour, so only closes run;
- a warm-up first: the same worker closes ``--warm-up`` other periods (500), then the tables are
  ANALYZEd, as autovacuum keeps a live database analyzed. Without it every plan PostgreSQL
  caches in the first closes is one for empty invoice tables, kept while they grow (the
  invoice-line triggers and foreign keys then scan them on every close): a state of the first
  minute of a new database, not of a worker's steady state;
- the baseline, in the same run and process: the same number of round trips a close makes
  (1/CONCURRENCY claim, 1 read with the usage totals, 1 write), each an empty ``SELECT 1``, at
  the same concurrency: what the connection and this machine allow before any work.

stdout: one JSON object per line per case; progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from billing.domain.subscriptions import SubscriptionChange, change_subscription
from billing.store import codec
from billing.store.database import connect, create_pool, with_database
from billing.store.embedded import EmbeddedPostgres
from billing.store.ids import new_id
from billing.store.migrate import migrate
from billing.telemetry import configure_logging, configure_telemetry
from invoicer import worker as worker_module
from invoicer.main import InvoicerConfig, run_invoicer
from invoicer.worker import WorkerConfig
from tests import invoicer_world as world

CONCURRENCY = WorkerConfig().concurrency  # the production default (INVOICER_CONCURRENCY)
ROUND_TRIPS = 2  # per close besides the claim: the reads (usage totals included), the write


def say(message: str) -> None:
    print(f"[bench/close {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def emit(case: str, **figures: Any) -> None:
    print(json.dumps({"bench": "close", "case": case, **figures}), flush=True)


async def seed(pool: Any, count: int) -> None:
    ids = await world.realistic_catalog(pool)
    catalog = await world.snapshot(pool)
    customers = await world.customers(pool, count)
    start = world.month_ago(ago=timedelta(minutes=30))
    subs = await world.subscribe(
        pool, catalog, customers, start=start, seats=[5] * count, plan_id=ids.plan,
        add_on_ids=(ids.addon,), coupon_codes=(ids.coupon_code,),
    )  # fmt: skip
    # A seat increase ten days before the boundary: a pending proration debit on each close.
    rows = await pool.fetch("SELECT id, state FROM subscriptions WHERE id = ANY($1::text[])", subs)
    from billing.domain.subscriptions import Subscription

    async with pool.acquire() as connection, connection.transaction():
        for row in rows:
            sub = codec.from_json(Subscription, row["state"])
            at = sub.boundary(sub.next_boundary) - timedelta(days=10)
            change = change_subscription(sub, SubscriptionChange(seats=Decimal(6)), catalog, (), at)
            await connection.execute(
                "UPDATE subscriptions SET state = $2::jsonb, version = version + 1 WHERE id = $1",
                row["id"], codec.to_json(change.subscription),
            )  # fmt: skip
            await connection.executemany(
                "INSERT INTO pending_proration_lines (id, subscription_id, created_for, line) "
                "VALUES ($1, $2, $3, $4::jsonb)",
                [(new_id("pl"), row["id"], at, codec.to_json(line)) for line in change.lines],
            )
    events = []
    for index, customer in enumerate(customers):
        at = start + timedelta(days=1 + index % 20)
        events += [
            (customer, ids.messages, at, Decimal(800 + index % 5000), {"channel": "email"}),
            (customer, ids.messages, at, Decimal(40 + index % 300), {"channel": "sms"}),
            (customer, ids.messages, at, Decimal(7), {"channel": "whatsapp"}),
        ]
        events += [(customer, ids.conversations, at, None, {"outcome": "resolved"})] * (1 + index % 5)
        events += [(customer, ids.conversations, at, None, {"outcome": "escalated"})]
    await world.add_usage(pool, events)
    await pool.execute("ANALYZE")


async def warm_up(url: str, pool: Any, count: int) -> None:
    stop = asyncio.Event()
    config = InvoicerConfig(worker=WorkerConfig(poll_interval=0.05))
    task = asyncio.create_task(run_invoicer(url, config, stop))
    while True:  # the database is what we wait on: poll it
        if await pool.fetchval("SELECT count(*) FROM invoices") >= count:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await task
    await pool.execute("ANALYZE")


async def measure_closes(url: str, pool: Any, count: int, already: int) -> None:
    latencies: list[float] = []
    original = worker_module.work_on

    async def timed(*args: Any) -> Any:
        began = time.perf_counter()
        try:
            return await original(*args)
        finally:
            latencies.append(time.perf_counter() - began)

    worker_module.work_on = timed  # type: ignore[assignment]
    stop = asyncio.Event()
    config = InvoicerConfig(worker=WorkerConfig(poll_interval=0.05))
    cpu_before = time.process_time()
    began = time.perf_counter()
    task = asyncio.create_task(run_invoicer(url, config, stop))
    while True:  # the database is what we wait on: poll it
        if await pool.fetchval("SELECT count(*) FROM invoices") >= already + count:
            break
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - began
    cpu = time.process_time() - cpu_before
    stop.set()
    await task
    worker_module.work_on = original
    latencies.sort()
    parked = await pool.fetchval("SELECT count(*) FROM subscriptions WHERE parked_reason IS NOT NULL")
    lines = await pool.fetchval(
        "SELECT count(*)::float / greatest(count(DISTINCT invoice_id), 1) FROM invoice_lines"
    )
    emit(
        "realistic_close",
        invoices_per_s=round(count / elapsed, 1),
        p50_ms=round(latencies[len(latencies) // 2] * 1000, 1),
        p99_ms=round(latencies[int(len(latencies) * 0.99)] * 1000, 1),
        invoices=count,
        concurrency=CONCURRENCY,
        lines_per_invoice=round(lines, 1),
        worker_cpu_us_per_invoice=round(cpu / count * 1e6),
        parked=parked,
        seconds=round(elapsed, 1),
    )


async def measure_baseline(pool: Any, count: int) -> None:
    async def one_close() -> None:
        async with pool.acquire() as connection:
            for _ in range(ROUND_TRIPS):
                await connection.fetchval("SELECT 1")

    async def claims() -> None:
        for _ in range(count // CONCURRENCY):
            await pool.fetchval("SELECT 1")

    pending = iter(range(count))

    async def lane() -> None:
        for _ in pending:
            await one_close()

    began = time.perf_counter()
    await asyncio.gather(claims(), *(lane() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - began
    emit("round_trips_baseline", closes_per_s=round(count / elapsed, 1), round_trips_per_close=ROUND_TRIPS)


async def main(count: int, warm: int) -> None:
    configure_logging(json_logs=True, level="INFO")
    server_url = os.environ.get("DATABASE_URL", "").strip()
    embedded = None
    folder = None
    if not server_url:
        folder = Path(tempfile.mkdtemp(prefix="bench-close-"))
        embedded = EmbeddedPostgres(folder / "pgdata").start()
        server_url = embedded.url
    name = f"bench_{secrets.token_hex(4)}"
    admin = await connect(server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server_url, name)
    try:
        await migrate(url)
        pool = await create_pool(url, max_size=CONCURRENCY + 2)
        try:
            say(f"seeding {warm} + {count} realistic periods")
            await seed(pool, warm + count)
            if warm:
                say(f"warming up: closing {warm} of them, then ANALYZE")
                await warm_up(url, pool, warm)
            say(f"closing {count} with one worker")
            await measure_closes(url, pool, count, warm)
            say("baseline")
            await measure_baseline(pool, count)
        finally:
            await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        if embedded is not None:
            embedded.stop()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscriptions", type=int, default=3000)
    parser.add_argument("--warm-up", type=int, default=500)
    arguments = parser.parse_args()
    # The production configuration (DESIGN.md §9): traces and metrics on, with the default
    # sampler and the exporters the OTEL_* variables choose (none unless set), as python -m invoicer.
    telemetry = configure_telemetry("billing-invoicer")
    try:
        import uvloop

        uvloop.run(main(arguments.subscriptions, arguments.warm_up))
    except ImportError:
        asyncio.run(main(arguments.subscriptions, arguments.warm_up))
    finally:
        telemetry.shutdown()
