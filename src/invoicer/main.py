"""Wires an invoicer worker process: pool, catalog snapshot, store, worker, outbox relay, signals.

The composition root of the ``invoicer`` deployable (as ``rating.server`` is of the other): the
only invoicer module that sees ``billing.store``. Settings come from the environment
(``INVOICER_*``, see :func:`config_from_env`), so the k8s Deployment and ``make run`` need no
arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog

from billing.domain.catalog import Catalog
from billing.heap import freeze_startup_heap
from billing.metrics import instruments
from billing.store import queue_gauges
from billing.store.catalog_snapshot import load_catalog, watch_catalog
from billing.store.database import create_pool
from billing.store.invoicer_store import InvoicerSettings, PostgresInvoicerStore
from billing.store.outbox import PostgresOutbox
from billing.store.period_queue import RetryPolicy
from invoicer.usecases.outbox import deliver_events
from invoicer.worker import Worker, WorkerConfig

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class InvoicerConfig:
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    lease: timedelta = timedelta(seconds=30)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    outbox_interval: float = 1.0  # seconds between outbox relay passes
    gauge_interval: float = 15.0  # seconds between samples of the queue-depth and parked gauges
    owner: str = ""


def config_from_env(env: Mapping[str, str] | None = None) -> InvoicerConfig:
    """``INVOICER_CONCURRENCY`` (16), ``INVOICER_GRACE_SECONDS`` (3600, the draft's grace window),
    ``INVOICER_LEASE_SECONDS`` (30), ``INVOICER_POLL_SECONDS`` (1), ``INVOICER_MAX_ATTEMPTS`` (8),
    ``INVOICER_RETRY_BASE_SECONDS`` (5), ``INVOICER_SHUTDOWN_SECONDS`` (30),
    ``INVOICER_GAUGE_SECONDS`` (15)."""
    env = os.environ if env is None else env

    # Durations are seconds (float); counts are whole numbers, so "2.5" workers is an error.
    def seconds(name: str, default: float) -> float:
        return float(env.get(f"INVOICER_{name}", default))

    def count(name: str, default: int) -> int:
        return int(env.get(f"INVOICER_{name}", default))

    lease = seconds("LEASE_SECONDS", 30)
    return InvoicerConfig(
        worker=WorkerConfig(
            concurrency=count("CONCURRENCY", 16),
            poll_interval=seconds("POLL_SECONDS", 1.0),
            grace=timedelta(seconds=seconds("GRACE_SECONDS", 3600)),
            renew_every=max(0.05, lease / 3),
            shutdown_grace=seconds("SHUTDOWN_SECONDS", 30),
        ),
        lease=timedelta(seconds=lease),
        retry=RetryPolicy(
            base=timedelta(seconds=seconds("RETRY_BASE_SECONDS", 5)),
            max_attempts=count("MAX_ATTEMPTS", 8),
        ),
        gauge_interval=seconds("GAUGE_SECONDS", 15.0),
        owner=env.get("INVOICER_OWNER", ""),
    )


class _CatalogHolder:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def version(self) -> int:
        return self.catalog.version

    def publish(self, catalog: Catalog) -> None:
        self.catalog = catalog


async def run_invoicer(database_url: str, config: InvoicerConfig, stop: asyncio.Event) -> None:
    """Run one worker until ``stop`` is set, then drain and return."""
    owner = config.owner or f"{socket.gethostname()}:{os.getpid()}"
    # A worker frozen mid-transaction (SIGSTOP, a long GC pause) must not hold its row locks for
    # ever: the server ends such a session, and its fenced commit fails on resume.
    pool = await create_pool(
        database_url,
        min_size=2,
        max_size=config.worker.concurrency + 3,
        application_name="invoicer",
        extra_settings={"idle_in_transaction_session_timeout": "10s"},
        # Nothing here sets session state, takes advisory locks or keeps cursors (the listener
        # unlistens itself), so the reset statement after every release would be a round trip
        # per acquire for nothing: a close acquires twice.
        reset_sessions=False,
    )
    try:
        holder = _CatalogHolder(await load_catalog(pool))
        settings = InvoicerSettings(lease=config.lease, retry=config.retry, owner=owner)

        async def refresh() -> Catalog:
            holder.publish(await load_catalog(pool))
            return holder.catalog

        store = PostgresInvoicerStore(pool, lambda: holder.catalog, settings, refresh)
        worker = Worker(store, config.worker)
        tasks = [
            asyncio.create_task(watch_catalog(pool, holder.version, holder.publish)),
            asyncio.create_task(_relay(PostgresOutbox(pool), config.outbox_interval)),
            asyncio.create_task(_sample_gauges(pool, config.gauge_interval)),
        ]
        runner = asyncio.create_task(worker.run())
        freeze_startup_heap()
        log.info("invoicer started", owner=owner, concurrency=config.worker.concurrency)
        await asyncio.wait([runner, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        worker.stop()
        await runner
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        log.info("invoicer stopped", **dict(worker.stats.done))
    finally:
        await _close(pool)


async def _relay(outbox: PostgresOutbox, interval: float) -> None:
    while True:
        try:
            await deliver_events(outbox)
        except Exception as error:
            log.warning("outbox relay failed", error=f"{type(error).__name__}: {error}")
        await asyncio.sleep(interval)


async def sample_gauges(pool: Any) -> queue_gauges.QueueGauges:
    """Read the queue-depth and parked counts once and set the gauges (exported at the next
    collection). One indexed statement; a worker runs it every ``gauge_interval`` seconds."""
    async with pool.acquire() as connection:
        gauges = await queue_gauges.read(connection)
    metrics = instruments()
    metrics.queue_depth.set(gauges.due)
    metrics.parked_subscriptions.set(gauges.parked)
    return gauges


async def _sample_gauges(pool: Any, interval: float) -> None:
    while True:
        try:
            await sample_gauges(pool)
        except Exception as error:  # a missed sample leaves the last value; the next one retries
            log.warning("queue gauges failed", error=f"{type(error).__name__}: {error}")
        await asyncio.sleep(interval)


async def _close(pool: Any) -> None:
    try:
        await asyncio.wait_for(pool.close(), timeout=5)
    except TimeoutError:
        pool.terminate()


async def run_until_signal(database_url: str, config: InvoicerConfig) -> None:
    """Run until SIGTERM or SIGINT: stop claiming, finish or release current work, return."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_invoicer(database_url, config, stop)
