"""The kill -9 storm (issue 5): invoicer workers killed at random moments close every period once.

Four ``python -m invoicer`` processes work through 5,000 subscriptions, each with one due period
and usage in it (each close is one fenced write; finalization, which numbers the drafts, is held
to its gapless rule by tests/integration/invoicer instead, to keep this run short). Meanwhile
200 SIGKILLs hit random workers at random moments, each replaced at once, and three times a
worker holding leases is frozen (SIGSTOP) past its lease and then resumed.

Then: no duplicate invoice, none missing, nothing parked, and the sum of the
totals equals what this test computes on its own from the seats and usage it generated (seat
price x seats + unit price x messages, tax per rate rounded once, half up): never from the code
under test. The frozen workers' leases were taken over, and on resume their writes were refused.
Measured on the loaded 2-core machine of this project: see docs/architecture.md "Invoicer".
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from billing.store.database import create_pool
from tests import invoicer_world as world
from tests.conftest import CreateDatabase

SEED = 5_052_026
SUBSCRIPTIONS = 5_000
WORKERS = 4
KILLS = 200
PAUSES = 3
LEASE_SECONDS = 2.0
DUE_OVER = timedelta(seconds=40)
TAX = Fraction(19, 100)  # DE standard rate, the customers' country


def _half_up(value: Fraction) -> int:
    return int(value + Fraction(1, 2)) if value >= 0 else -int(-value + Fraction(1, 2))


class Workers:
    """Four worker slots; a killed or finished worker is replaced by a new generation."""

    def __init__(self, url: str, logs: Path) -> None:
        self._url = url
        self._logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []
        self.owners: list[str] = []
        self._generation = 0

    def start(self, slot: int) -> None:
        self._generation += 1
        owner = f"w{slot}-g{self._generation}"
        env = {
            **os.environ,
            "DATABASE_URL": self._url,
            "INVOICER_OWNER": owner,
            "INVOICER_GRACE_SECONDS": "3600",
            "INVOICER_LEASE_SECONDS": str(LEASE_SECONDS),
            "INVOICER_POLL_SECONDS": "0.2",
            "INVOICER_CONCURRENCY": "8",
            "BILLING_LOG_FORMAT": "json",
        }
        log = (self._logs / f"{owner}.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "invoicer"], env=env, stdout=log, stderr=log)
        if slot < len(self.procs):
            self.procs[slot], self.owners[slot] = proc, owner
        else:
            self.procs.append(proc)
            self.owners.append(owner)

    def kill(self, slot: int) -> None:
        self.procs[slot].send_signal(signal.SIGKILL)
        self.procs[slot].wait()
        self.start(slot)

    def stop_all(self) -> list[int]:
        """SIGTERM every worker once it is up (its handler installed): each must exit 0."""
        deadline = time.monotonic() + 60
        for owner in self.owners:
            log = self._logs / f"{owner}.log"
            while b"invoicer started" not in log.read_bytes() and time.monotonic() < deadline:
                time.sleep(0.05)
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
        return [proc.wait(timeout=60) for proc in self.procs]


async def _leased_by(pool: object, owner: str) -> list[str]:
    rows = await pool.fetch(  # type: ignore[attr-defined]
        "SELECT id FROM subscriptions WHERE lease_owner = $1 AND lease_expires_at > now()", owner
    )
    return [row["id"] for row in rows]


async def _wait_for_work(pool: object, owners: list[str], seconds: float) -> list[str]:
    """The live workers holding leases, as soon as there is one; empty after ``seconds``, or at
    once when nothing is left to do."""
    deadline = time.monotonic() + seconds
    while True:
        row = await pool.fetchrow(  # type: ignore[attr-defined]
            """
            SELECT ARRAY(SELECT DISTINCT lease_owner FROM subscriptions
                         WHERE lease_owner = ANY($1::text[]) AND lease_expires_at > now()) AS working,
                   EXISTS (SELECT FROM subscriptions WHERE due_at <= now()) AS due
            """,
            owners,
        )
        if row["working"] or not row["due"] or time.monotonic() > deadline:
            return list(row["working"])
        await asyncio.sleep(0.01)


@pytest.mark.timeout(600)
async def test_killed_and_frozen_workers_invoice_every_period_exactly_once(
    create_database: CreateDatabase, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    setup_began = time.monotonic()
    url = await create_database(migrated=True)
    pool = await create_pool(url, max_size=4)
    try:
        catalog_ids = await world.simple_catalog(pool)
        catalog = await world.snapshot(pool)
        customers = await world.customers(pool, SUBSCRIPTIONS)
        # Periods fall due steadily over DUE_OVER (as they do all day), so the workers always have
        # work while they are being killed and frozen. Drafts are finalized an hour after their
        # boundary: not during this test.
        first_due = datetime.now(UTC) + timedelta(seconds=5)
        starts = [
            world.month_ago(first_due + DUE_OVER * i / SUBSCRIPTIONS, ago=timedelta(0))
            for i in range(SUBSCRIPTIONS)
        ]
        seats = [rng.randint(1, 40) for _ in customers]
        await world.subscribe(
            pool, catalog, customers, start=starts, seats=seats,
            prices=[catalog_ids.seat_price, catalog_ids.message_price],
        )  # fmt: skip
        events = []
        messages: dict[str, Decimal] = dict.fromkeys(customers, Decimal(0))
        for customer, begins in zip(customers, starts, strict=True):
            for _ in range(rng.randint(0, 3)):
                value = Decimal(rng.randint(1, 5000))
                at = begins + timedelta(seconds=rng.randint(0, 27 * 86_400))
                events.append((customer, catalog_ids.meter, at, value, {}))
                messages[customer] += value
        await world.add_usage(pool, events)

        # The expected invoices, computed here from the generated data alone.
        expected_total = 0
        for customer, seat_count in zip(customers, seats, strict=True):
            net = seat_count * world.SEAT_PRICE + int(messages[customer]) * world.MESSAGE_PRICE
            expected_total += net + _half_up(net * TAX)

        setup_s = time.monotonic() - setup_began
        workers = Workers(url, tmp_path)
        for slot in range(WORKERS):
            workers.start(slot)
        began = time.monotonic()
        kills = 0
        frozen: list[tuple[str, list[str]]] = []
        # Each kill lands at a random moment of a worker's work: a worker holding leases (it has
        # claimed and is rating or committing) is picked at random, after a random delay. When
        # none is at work (all booting) for 3 s, or nothing is left to do, any worker is killed.
        # Freezes are spread over the storm and also take a worker at work.
        mid_work = 0
        pause_after = sorted(rng.sample(range(10, KILLS // 2), PAUSES))
        while kills < KILLS:
            working = await _wait_for_work(pool, workers.owners, seconds=3.0)
            await asyncio.sleep(rng.uniform(0, 0.05))
            slot = workers.owners.index(rng.choice(working)) if working else rng.randrange(WORKERS)
            if working and pause_after and kills >= pause_after[0]:
                pause_after.pop(0)
                frozen.append(await _freeze(workers, slot, pool))
                continue
            mid_work += bool(working)
            workers.kill(slot)
            kills += 1
        await asyncio.sleep(max(0.0, (first_due + DUE_OVER - datetime.now(UTC)).total_seconds()))
        done = await _wait_until_idle(pool, seconds=240)
        elapsed = time.monotonic() - began
        codes = workers.stop_all()

        summary = await pool.fetchrow(
            """
            SELECT count(*) AS invoices, coalesce(sum(total), 0)::bigint AS total,
                   count(number_seq) AS numbered, coalesce(max(number_seq), 0) AS last_number
            FROM invoices
            """
        )
        duplicates = await pool.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM invoices GROUP BY subscription_id, boundary "
            "HAVING count(*) > 1) d"
        )
        missing = await pool.fetchval(
            "SELECT count(*) FROM subscriptions s WHERE NOT EXISTS "
            "(SELECT 1 FROM invoices i WHERE i.subscription_id = s.id)"
        )
        parked = await pool.fetchval("SELECT count(*) FROM subscriptions WHERE parked_reason IS NOT NULL")
        print(
            json.dumps(
                {
                    "setup_s": round(setup_s, 1),
                    "storm_s": round(elapsed, 1),
                    "kills": kills,
                    "kills_mid_work": mid_work,
                    "frozen": len(frozen),
                    "duplicates": duplicates,
                    "missing": missing,
                    "invoices": summary["invoices"],
                    "total": summary["total"],
                    "expected_total": expected_total,
                }
            )
        )
        assert done, "workers did not finish the periods in time"
        assert duplicates == 0
        assert missing == 0
        assert summary["invoices"] == SUBSCRIPTIONS
        assert parked == 0
        assert summary["total"] == expected_total
        # Drafts are finalized an hour after their boundary; any that were are numbered 1..n.
        assert summary["numbered"] == summary["last_number"]
        assert all(code == 0 for code in codes), codes
        assert mid_work >= KILLS // 2, "too few kills hit a worker at work"
        assert len(frozen) == PAUSES
        for owner, _ in frozen:
            refused = _aborted_jobs(tmp_path / f"{owner}.log")
            assert refused >= 1, f"{owner} resumed without a refused write"
    finally:
        await pool.close()


async def _freeze(workers: Workers, slot: int, pool: object) -> tuple[str, list[str]]:
    """Stop the worker past its lease, wait until another took one of its subscriptions over,
    then let it run on (it is killed later like the others, or stopped at the end)."""
    proc, owner = workers.procs[slot], workers.owners[slot]
    proc.send_signal(signal.SIGSTOP)
    held = await _leased_by(pool, owner)
    await asyncio.sleep(LEASE_SECONDS + 0.5)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        taken = await pool.fetchval(  # type: ignore[attr-defined]
            "SELECT count(*) FROM subscriptions WHERE id = ANY($1::text[]) "
            "AND (lease_owner IS DISTINCT FROM $2 OR version > 1)",
            held,
            owner,
        )
        if taken:
            break
        await asyncio.sleep(0.1)
    proc.send_signal(signal.SIGCONT)
    # Keep it alive long enough to try its writes: this slot is not killed for a moment.
    await asyncio.sleep(1.0)
    return owner, held


async def _wait_until_idle(pool: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = await pool.fetchval(  # type: ignore[attr-defined]
            "SELECT count(*) FROM subscriptions WHERE due_at <= now() AND parked_reason IS NULL"
        )
        if left == 0:
            return True
        await asyncio.sleep(0.5)
    return False


def _aborted_jobs(log: Path) -> int:
    count = 0
    for line in log.read_text(errors="replace").splitlines():
        with_event = line.startswith("{") and json.loads(line).get("event") == "job aborted"
        count += with_event
    return count
