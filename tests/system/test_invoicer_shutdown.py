"""SIGTERM on a real, busy ``python -m invoicer`` process (issue 6, Lifecycle).

The worker stops claiming, finishes the jobs in flight (or, past ``INVOICER_SHUTDOWN_SECONDS``,
cancels them and gives their leases back) and exits 0. Afterwards no lease is held by it, no
invoice is half-written (each has its lines, and its totals are their sums), and the invoices
are exactly the closed periods; a second worker then finishes the rest, one invoice per period.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import signal
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from billing.store.database import create_pool
from tests import invoicer_world as world
from tests.conftest import CreateDatabase

LINES_PER_INVOICE = 2  # a seat line and a message line (every customer has usage)


async def _seed(pool: asyncpg.Pool[Any], count: int) -> list[str]:
    """``count`` subscriptions, each with one period due (its boundary three days ago) and
    usage in it."""
    ids = await world.simple_catalog(pool)
    catalog = await world.snapshot(pool)
    customers = await world.customers(pool, count)
    start = world.month_ago()
    subs = await world.subscribe(
        pool, catalog, customers, start=start, seats=[3] * count,
        prices=[ids.seat_price, ids.message_price],
    )  # fmt: skip
    at = start + timedelta(days=2)
    await world.add_usage(pool, [(c, ids.meter, at, Decimal(100 + i), {}) for i, c in enumerate(customers)])
    return subs


async def _start(url: str, owner: str, log: Path, **settings: str) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "INVOICER_OWNER": owner,
        "INVOICER_POLL_SECONDS": "0.2",
        "BILLING_LOG_FORMAT": "json",
        **{f"INVOICER_{name.upper()}": value for name, value in settings.items()},
    }
    with log.open("wb") as out:  # the child writes to its own copy of the descriptor
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "invoicer", env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
    await _until(lambda: _logged(log, "invoicer started"), seconds=60, what="the worker to start")
    return process


def _logged(log: Path, event: str) -> list[dict[str, Any]]:
    lines = log.read_text(errors="replace").splitlines()
    return [
        record for line in lines if line.startswith("{") and (record := json.loads(line))["event"] == event
    ]


async def _until(check: Any, *, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while not (value := await _value(check())):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
    return value


async def _value(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def _sigterm(process: asyncio.subprocess.Process, grace_s: float) -> float:
    """SIGTERM, then the exit code must be 0; the seconds it took."""
    process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    code = await asyncio.wait_for(process.wait(), grace_s + 30)
    assert code == 0
    return time.monotonic() - signalled


async def _state(pool: asyncpg.Pool[Any], owner: str) -> asyncpg.Record:
    row = await pool.fetchrow(
        """
        SELECT
            (SELECT count(*) FROM subscriptions WHERE lease_owner = $1) AS leased,
            -- A closed period moved the subscription's boundary a month ahead, into the future.
            (SELECT count(*) FROM subscriptions WHERE next_boundary_at > now()) AS closed,
            (SELECT count(*) FROM invoices) AS invoices,
            (SELECT count(*) FROM invoices WHERE status <> 'draft') AS finalized,
            (SELECT count(*) FROM (SELECT 1 FROM invoices GROUP BY subscription_id, boundary
                                   HAVING count(*) > 1) d) AS duplicates,
            -- Half-written: lines missing, or totals that are not the sums of the lines.
            (SELECT count(*) FROM invoices i WHERE
                (SELECT count(*) FROM invoice_lines l WHERE l.invoice_id = i.id) <> $2
                OR i.subtotal <> (SELECT sum(l.amount) FROM invoice_lines l WHERE l.invoice_id = i.id)
                OR i.tax <> (SELECT sum(l.tax) FROM invoice_lines l WHERE l.invoice_id = i.id)
                OR i.total <> i.subtotal - i.discount + i.tax) AS half_written,
            (SELECT count(*) FROM invoices WHERE status <> 'draft' AND number IS NULL) AS unnumbered,
            (SELECT coalesce(max(number_seq), 0) FROM invoices) AS last_number,
            (SELECT count(*) FROM outbox_events WHERE type = 'invoice.created') AS created_events,
            (SELECT count(*) FROM subscriptions WHERE parked_reason IS NOT NULL) AS parked
        """,
        owner,
        LINES_PER_INVOICE,
    )
    assert row is not None
    return row


@pytest.mark.timeout(300)
async def test_sigterm_on_a_busy_worker_finishes_its_jobs_and_exits_0(
    create_database: CreateDatabase, tmp_path: Path
) -> None:
    periods, grace_s = 2_000, 10.0
    url = await create_database(migrated=True)
    pool = await create_pool(url, max_size=4)
    try:
        await _seed(pool, periods)
        # No grace window: a close's draft is finalized by a later job, so both a one-statement
        # close and a multi-statement finalization are in flight when the signal lands.
        log = tmp_path / "first.log"
        first = await _start(
            url, "first", log, grace_seconds="0", concurrency="16", shutdown_seconds=str(grace_s)
        )

        async def busy() -> bool:
            state = await _state(pool, "first")
            return bool(state["leased"] >= 4 and state["finalized"] >= 50)

        await _until(busy, seconds=120, what="the worker to be busy")
        took = await _sigterm(first, grace_s)
        after = await _state(pool, "first")
        draining = _logged(log, "draining jobs in flight")

        in_flight = draining[0]["count"] if draining else 0
        print(
            json.dumps(
                {"closed_at_sigterm": after["closed"], "in_flight": in_flight, "exit_s": round(took, 2)}
            )
        )
        assert in_flight >= 1, "the signal did not land mid-work"
        assert took < grace_s, "jobs of a few milliseconds should not need the whole grace period"
        assert after["leased"] == 0
        assert after["half_written"] == 0
        assert after["invoices"] == after["closed"] == after["created_events"]
        assert after["closed"] < periods, "the worker was not busy: it finished everything"
        assert after["unnumbered"] == 0
        assert after["last_number"] == after["finalized"]  # gapless so far
        assert _logged(log, "invoicer stopped"), "it did not drain as designed"

        second = await _start(url, "second", tmp_path / "second.log", grace_seconds="0")

        async def done() -> bool:
            return bool((await _state(pool, "second"))["finalized"] == periods)

        await _until(done, seconds=180, what="the second worker to finish")
        await _sigterm(second, 30)
        final = await _state(pool, "second")
        one_each = await pool.fetchval(
            "SELECT count(*) FROM subscriptions s WHERE "
            "(SELECT count(*) FROM invoices i WHERE i.subscription_id = s.id) = 1"
        )
    finally:
        await pool.close()
    assert one_each == periods
    assert (final["invoices"], final["closed"], final["duplicates"], final["half_written"]) == (
        periods,
        periods,
        0,
        0,
    )
    assert (final["last_number"], final["unnumbered"], final["parked"], final["leased"]) == (periods, 0, 0, 0)


@pytest.mark.timeout(120)
async def test_jobs_that_outlive_the_grace_period_are_cancelled_and_their_leases_given_back(
    create_database: CreateDatabase, tmp_path: Path
) -> None:
    """Every close is held at its write (the test holds a lock its INSERT needs), so none can
    finish: past the grace period the worker cancels them, rolls them back, releases their
    leases and still exits 0."""
    periods, grace_s, concurrency = 40, 1.0, 8
    url = await create_database(migrated=True)
    pool = await create_pool(url, max_size=4)
    blocker = await asyncpg.connect(url)
    try:
        await _seed(pool, periods)
        blocking = blocker.transaction()
        await blocking.start()
        # SHARE conflicts with the INSERT of the close's lines, not with the close's reads.
        await blocker.execute("LOCK TABLE invoice_lines IN SHARE MODE")
        log = tmp_path / "held.log"
        held = await _start(
            url,
            "held",
            log,
            grace_seconds="3600",
            concurrency=str(concurrency),
            shutdown_seconds=str(grace_s),
        )

        async def stuck() -> bool:
            waiting = await pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'invoicer' "
                "AND wait_event_type = 'Lock' AND datname = current_database()"
            )
            return bool(waiting == concurrency)

        await _until(stuck, seconds=60, what="every job to wait at its write")
        assert (await _state(pool, "held"))["leased"] == concurrency
        took = await _sigterm(held, grace_s)
        after = await _state(pool, "held")
        cancelled = _logged(log, "leases released")
        await blocking.rollback()

        assert grace_s <= took < grace_s + 10
        assert after["leased"] == 0
        assert cancelled
        assert cancelled[0]["count"] == concurrency
        assert (after["invoices"], after["closed"], after["created_events"]) == (0, 0, 0)

        second = await _start(url, "second", tmp_path / "second.log", grace_seconds="3600")

        async def done() -> bool:
            return bool((await _state(pool, "second"))["closed"] == periods)

        await _until(done, seconds=60, what="the second worker to finish")
        await _sigterm(second, 30)
        final = await _state(pool, "second")
    finally:
        await blocker.close()
        await pool.close()
    assert (final["invoices"], final["duplicates"], final["half_written"], final["leased"]) == (
        periods,
        0,
        0,
        0,
    )
