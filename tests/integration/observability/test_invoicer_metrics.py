"""The invoicer's metrics, recorded by a real worker on a real database and read through the
in-memory reader of the session's telemetry (issue 6).

Counters and histograms are cumulative for the whole test process, so each test compares the
reader's figures before and after its own work; the gauges are the last value sampled.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from billing.metrics import instruments
from billing.store import period_queue
from billing.store.database import create_pool
from billing.store.invoicer_store import InvoicerSettings, PostgresInvoicerStore
from billing.telemetry import Telemetry
from invoicer.main import sample_gauges
from invoicer.worker import Worker, WorkerConfig
from tests import invoicer_world as world
from tests.conftest import CreateDatabase
from tests.integration.invoicer.conftest import config, eventually, running
from tests.integration.observability.conftest import METRICS

Figures = dict[tuple[str, tuple[tuple[str, Any], ...]], float]


def _figures() -> Figures:
    """Every invoicer metric point, by (name, attributes): a counter's or gauge's value, a
    histogram's count."""
    figures: Figures = {}
    data = METRICS.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if not metric.name.startswith("billing.invoicer."):
                    continue
                for point in metric.data.data_points:
                    key = (metric.name, tuple(sorted((point.attributes or {}).items())))
                    figures[key] = getattr(point, "count", None) or getattr(point, "value", 0)
    return figures


def _delta(before: Figures, after: Figures, name: str) -> dict[tuple[tuple[str, Any], ...], float]:
    changed = {}
    for (metric, attributes), value in after.items():
        if metric == name and value != before.get((metric, attributes), 0):
            changed[attributes] = value - before.get((metric, attributes), 0)
    return changed


def _gauge(figures: Figures, name: str) -> float | None:
    """The gauge's last sample (None: never sampled in this process)."""
    return figures.get((f"billing.invoicer.{name}", ()))


class _Faults:
    """The real store, with two faults injected into ``close_inputs`` for chosen subscriptions:
    an unexpected error (a bug: retried, then parked), and a lease that runs out while the close
    is being rated (as if the worker had paused past it): the fenced write is refused."""

    def __init__(self, store: PostgresInvoicerStore, pool: asyncpg.Pool[Any], failing: str, expiring: str):
        self._store, self._pool = store, pool
        self._failing, self._expiring = failing, expiring
        self.expired = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def close_inputs(self, claim: Any) -> Any:
        if claim.subscription_id == self._failing:
            raise RuntimeError("planted bug")
        inputs = await self._store.close_inputs(claim)
        if claim.subscription_id == self._expiring and not self.expired:
            self.expired += 1
            await self._pool.execute(
                "UPDATE subscriptions SET lease_expires_at = clock_timestamp() - interval '1 second' "
                "WHERE id = $1",
                claim.subscription_id,
            )
        return inputs


async def _due(pool: asyncpg.Pool[Any], count: int, starts: list[datetime] | None = None) -> list[str]:
    ids = await world.simple_catalog(pool)
    catalog = await world.snapshot(pool)
    return await world.subscribe(
        pool, catalog, await world.customers(pool, count), start=starts or world.month_ago(),
        seats=[1] * count, prices=[ids.seat_price, ids.message_price],
    )  # fmt: skip


async def test_the_worker_counts_each_outcome_times_each_action_and_counts_a_lost_lease(
    telemetry: Telemetry, create_database: CreateDatabase
) -> None:
    url = await create_database(migrated=True)
    pool: asyncpg.Pool[Any] = await create_pool(url, max_size=8)
    try:
        *_, stray, failing, expiring = await _due(pool, 6)
        # An inconsistency (an invoice already exists for the boundary the row says is open):
        # parked at the first attempt.
        await pool.execute(
            "INSERT INTO invoices (id, customer_id, subscription_id, boundary, kind, currency) "
            "SELECT 'in_stray', customer_id, id, next_boundary_at, 'closing', currency "
            "FROM subscriptions WHERE id = $1",
            stray,
        )
        catalog = await world.snapshot(pool)
        # Two attempts at most, 50 ms apart: the planted bug is retried once, then parked.
        retry = period_queue.RetryPolicy(base=timedelta(milliseconds=50), max_attempts=2)
        settings = InvoicerSettings(lease=timedelta(seconds=30), retry=retry, owner="metrics-test")
        store = _Faults(PostgresInvoicerStore(pool, lambda: catalog, settings), pool, failing, expiring)
        # No grace window: every draft is finalized by the job after its close.
        worker = Worker(store, WorkerConfig(concurrency=4, poll_interval=0.05, grace=timedelta(0)))

        async def settled() -> bool:
            row = await pool.fetchrow(
                "SELECT (SELECT count(*) FROM invoices WHERE status <> 'draft') AS finalized, "
                "(SELECT count(*) FROM subscriptions WHERE parked_reason IS NOT NULL) AS parked"
            )
            return bool(row["finalized"] == 4 and row["parked"] == 2)

        before = _figures()
        running_worker = asyncio.create_task(worker.run())
        try:
            assert await eventually(settled, seconds=30)
        finally:
            worker.stop()
            await running_worker
        await sample_gauges(pool)
        after = _figures()
    finally:
        await pool.close()

    # By hand: a, b, c and `expiring` are each closed then finalized; `expiring`'s first close is
    # refused by the fence (its lease ran out) and released; `stray` is parked at once; `failing`
    # fails once (retried) and parks at its second attempt.
    assert store.expired == 1
    assert _delta(before, after, "billing.invoicer.periods.closed") == {
        (("outcome", "closed"),): 4,
        (("outcome", "finalized"),): 4,
        (("outcome", "released"),): 1,
        (("outcome", "retried"),): 1,
        (("outcome", "parked"),): 2,
    }
    assert _delta(before, after, "billing.invoicer.close.duration") == {
        (("action", "close"), ("outcome", "closed")): 4,
        (("action", "finalize"), ("outcome", "finalized")): 4,
        (("action", "close"), ("outcome", "released")): 1,
        (("action", "close"), ("outcome", "retried")): 1,
        (("action", "close"), ("outcome", "parked")): 2,
    }
    assert _delta(before, after, "billing.invoicer.lease.expirations") == {(): 1}
    assert _gauge(after, "queue.depth") == 0
    assert _gauge(after, "parked.subscriptions") == 2
    assert worker.stats.done == {"closed": 4, "finalized": 4, "aborted": 1, "failed": 2, "parked": 2}


async def test_queue_depth_counts_exactly_what_a_claim_would_take(
    telemetry: Telemetry, create_database: CreateDatabase
) -> None:
    url = await create_database(migrated=True)
    pool: asyncpg.Pool[Any] = await create_pool(url, max_size=4)
    try:
        now = datetime.now(UTC)
        starts = [world.month_ago()] * 6 + [now - timedelta(days=10)] * 2
        due_a, due_b, leased, expired, backing_off, parked, not_due, on_clock = await _due(pool, 8, starts)
        await pool.execute(
            "UPDATE subscriptions SET lease_token = gen_random_uuid(), lease_owner = 'elsewhere', "
            "lease_expires_at = now() + interval '1 hour' WHERE id = $1",
            leased,
        )
        await pool.execute(
            "UPDATE subscriptions SET lease_token = gen_random_uuid(), lease_owner = 'dead', "
            "lease_expires_at = now() - interval '1 second' WHERE id = $1",
            expired,
        )
        await pool.execute(
            "UPDATE subscriptions SET attempts = 1, next_attempt_at = now() + interval '1 hour' "
            "WHERE id = $1",
            backing_off,
        )
        await pool.execute(
            "UPDATE subscriptions SET parked_reason = 'test', parked_at = now() WHERE id = $1", parked
        )
        # Not due in real time (its boundary is 20 days away), but due on a clock 60 days ahead.
        await pool.execute(
            "INSERT INTO test_clocks (id, frozen_time) VALUES ('clk_gauge', now() + interval '60 days')"
        )
        await pool.execute("UPDATE subscriptions SET test_clock_id = 'clk_gauge' WHERE id = $1", on_clock)

        gauges = await sample_gauges(pool)
        figures = _figures()
        # By hand: the two untouched due rows, the one whose lease expired, the one on the clock.
        assert (gauges.due, gauges.parked) == (4, 1)
        assert (_gauge(figures, "queue.depth"), _gauge(figures, "parked.subscriptions")) == (4, 1)
        async with pool.acquire() as connection:
            claimed, recorded = await period_queue.claim(
                connection, limit=100, owner="t", lease=timedelta(seconds=30)
            )
        # The claim takes all four: the expired lease's row is not leased but has the dead
        # worker's attempt recorded (it backs off), the others are leased.
        assert {c.subscription_id for c in claimed} == {due_a, due_b, on_clock}
        assert [row.subscription_id for row in recorded] == [expired]
        row = await pool.fetchrow(
            "SELECT attempts, next_attempt_at > now() AS backing_off FROM subscriptions WHERE id = $1",
            expired,
        )
        assert (row["attempts"], row["backing_off"]) == (1, True)
        assert not_due not in {c.subscription_id for c in claimed}
    finally:
        await pool.close()


async def test_python_m_invoicer_wiring_records_jobs_and_samples_the_gauges(
    telemetry: Telemetry, create_database: CreateDatabase
) -> None:
    """run_invoicer, as the process runs it: the worker's default recorder is the global one,
    and the gauge sampler runs beside it."""
    url = await create_database(migrated=True)
    pool: asyncpg.Pool[Any] = await create_pool(url, max_size=4)
    try:
        *_, parked = await _due(pool, 3)
        await pool.execute(
            "UPDATE subscriptions SET parked_reason = 'test', parked_at = now() WHERE id = $1", parked
        )
        instruments().parked_subscriptions.set(-1)  # whatever an earlier test left: not a sample

        async def finalized() -> bool:
            return bool(await pool.fetchval("SELECT count(*) FROM invoices WHERE status <> 'draft'") == 2)

        before = _figures()
        # Boundaries three days ago and a one-hour grace: each close is followed by its finalization.
        settings = dataclasses.replace(config(poll=0.1), gauge_interval=0.05)
        async with running(url, settings):
            assert await eventually(finalized, seconds=30)
            assert await eventually(lambda: _sampled(0, 1), seconds=10)
        after = _figures()
    finally:
        await pool.close()
    assert _delta(before, after, "billing.invoicer.periods.closed") == {
        (("outcome", "closed"),): 2,
        (("outcome", "finalized"),): 2,
    }


async def _sampled(due: int, parked: int) -> bool:
    figures = _figures()
    return (_gauge(figures, "queue.depth"), _gauge(figures, "parked.subscriptions")) == (due, parked)
