"""The kill -9 storm (issue 5): invoicer workers killed at random moments close every period once.

Four ``python -m invoicer`` processes work through 5,000 subscriptions, each with one due period
and usage in it (grace window 0, so every draft is finalized too: 10,000 fenced writes). Meanwhile
200 SIGKILLs hit random workers at random moments, each replaced at once, and three times a
worker holding leases is frozen (SIGSTOP) past its lease and then resumed.

Then: no duplicate invoice, none missing, nothing parked, numbers gapless, and the sum of the
totals equals what this test computes on its own from the seats and usage it generated (seat
price x seats + unit price x messages, tax per rate rounded once, half up): never from the code
under test. The frozen workers' leases were taken over, and on resume their writes were refused.
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
from datetime import timedelta
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
            "INVOICER_GRACE_SECONDS": "0",
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


@pytest.mark.timeout(600)
async def test_killed_and_frozen_workers_invoice_every_period_exactly_once(
    create_database: CreateDatabase, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    url = await create_database(migrated=True)
    pool = await create_pool(url, max_size=4)
    try:
        catalog_ids = await world.simple_catalog(pool)
        catalog = await world.snapshot(pool)
        customers = await world.customers(pool, SUBSCRIPTIONS)
        start = world.month_ago()
        seats = [rng.randint(1, 40) for _ in customers]
        await world.subscribe(
            pool, catalog, customers, start=start, seats=seats,
            prices=[catalog_ids.seat_price, catalog_ids.message_price],
        )  # fmt: skip
        events = []
        messages: dict[str, Decimal] = dict.fromkeys(customers, Decimal(0))
        for customer in customers:
            for _ in range(rng.randint(0, 3)):
                value = Decimal(rng.randint(1, 5000))
                at = start + timedelta(seconds=rng.randint(0, 27 * 86_400))
                events.append((customer, catalog_ids.meter, at, value, {}))
                messages[customer] += value
        await world.add_usage(pool, events)

        # The expected invoices, computed here from the generated data alone.
        expected_total = 0
        for customer, seat_count in zip(customers, seats, strict=True):
            net = seat_count * world.SEAT_PRICE + int(messages[customer]) * world.MESSAGE_PRICE
            expected_total += net + _half_up(net * TAX)

        workers = Workers(url, tmp_path)
        for slot in range(WORKERS):
            workers.start(slot)
        began = time.monotonic()
        kills = 0
        frozen: list[tuple[str, list[str]]] = []
        pause_at = sorted(rng.sample(range(20, KILLS - 20), PAUSES))
        while kills < KILLS:
            await asyncio.sleep(rng.uniform(0.02, 0.25))
            slot = rng.randrange(WORKERS)
            if kills in pause_at and not any(owner == workers.owners[slot] for owner, _ in frozen):
                held = await _leased_by(pool, workers.owners[slot])
                if held:
                    pause_at.remove(kills)
                    frozen.append(await _freeze(workers, slot, pool, held))
                    continue
            workers.kill(slot)
            kills += 1
        done = await _wait_until_idle(pool, seconds=240)
        elapsed = time.monotonic() - began
        codes = workers.stop_all()

        summary = await pool.fetchrow(
            """
            SELECT count(*) AS invoices, count(DISTINCT subscription_id) AS subscriptions,
                   coalesce(sum(total), 0)::bigint AS total, count(*) FILTER (WHERE status = 'draft') AS drafts,
                   min(number_seq) AS first_number, max(number_seq) AS last_number,
                   count(DISTINCT number_seq) AS numbers
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
                    "elapsed_s": round(elapsed, 1),
                    "kills": kills,
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
        assert summary["drafts"] == 0
        assert (summary["first_number"], summary["last_number"], summary["numbers"]) == (
            1, SUBSCRIPTIONS, SUBSCRIPTIONS,
        )  # fmt: skip
        assert all(code == 0 for code in codes), codes
        assert len(frozen) == PAUSES
        for owner, _ in frozen:
            refused = _aborted_jobs(tmp_path / f"{owner}.log")
            assert refused >= 1, f"{owner} resumed without a refused write"
    finally:
        await pool.close()


async def _freeze(workers: Workers, slot: int, pool: object, held: list[str]) -> tuple[str, list[str]]:
    """Stop the worker past its lease, wait until another took one of its subscriptions over,
    then let it run on (it is killed later like the others, or stopped at the end)."""
    proc, owner = workers.procs[slot], workers.owners[slot]
    proc.send_signal(signal.SIGSTOP)
    held = await _leased_by(pool, owner) or held
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
