"""The queue: wake-ups are hints and polling is the guarantee; a parked subscription blocks nobody."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import asyncpg
import structlog

from billing.store import period_queue
from billing.store.invoicer_store import InvoicerSettings, PostgresInvoicerStore
from tests import invoicer_world as world
from tests.integration.invoicer.conftest import config, eventually, running


async def _due(pool: asyncpg.Pool[Any], count: int) -> list[str]:
    ids = await world.simple_catalog(pool)
    catalog = await world.snapshot(pool)
    customers = await world.customers(pool, count)
    return await world.subscribe(pool, catalog, customers, start=world.month_ago(), seats=[1] * count,
                                 prices=[ids.seat_price, ids.message_price])  # fmt: skip


async def _invoices(pool: asyncpg.Pool[Any]) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM invoices")
    return count


async def test_a_notification_wakes_an_idle_worker_long_before_its_next_poll(
    invoicer_url: str, pool: asyncpg.Pool[Any]
) -> None:
    async with running(invoicer_url, config(poll=60)):
        await _due(pool, 1)  # the insert's trigger sends the NOTIFY
        assert await eventually(lambda: _has(pool, 1), seconds=10)


async def test_work_whose_notification_was_lost_is_found_by_polling(
    invoicer_url: str, pool: asyncpg.Pool[Any]
) -> None:
    # The wake-up trigger off: the rows arrive without any NOTIFY, as if it had been lost.
    await pool.execute("ALTER TABLE subscriptions DISABLE TRIGGER subscriptions_wakeup")
    async with running(invoicer_url, config(poll=0.5)):
        await _due(pool, 3)
        assert await eventually(lambda: _has(pool, 3), seconds=20)


async def _has(pool: asyncpg.Pool[Any], count: int) -> bool:
    return await _invoices(pool) >= count


async def test_a_parked_subscription_does_not_block_the_others(
    invoicer_url: str, pool: asyncpg.Pool[Any]
) -> None:
    subs = await _due(pool, 20)
    broken = subs[0]
    # An inconsistency: an invoice already exists for the boundary the subscription says is open.
    await pool.execute(
        """
        INSERT INTO invoices (id, customer_id, subscription_id, boundary, kind, currency)
        SELECT 'in_stray', customer_id, id, next_boundary_at, 'closing', currency
        FROM subscriptions WHERE id = $1
        """,
        broken,
    )
    async with running(invoicer_url, config()):
        assert await eventually(lambda: _has(pool, 20))
        parked = await eventually(
            lambda: pool.fetchval("SELECT parked_reason IS NOT NULL FROM subscriptions WHERE id = $1", broken)
        )
    assert parked
    reason = await pool.fetchval("SELECT parked_reason FROM subscriptions WHERE id = $1", broken)
    assert "already has an invoice" in reason
    closed = await pool.fetchval(
        "SELECT count(*) FROM invoices WHERE subscription_id = ANY($1::text[])", subs[1:]
    )
    assert closed == 19


async def test_failures_back_off_exponentially_then_park_with_the_reason(pool: asyncpg.Pool[Any]) -> None:
    [sub_id] = await _due(pool, 1)
    policy = period_queue.RetryPolicy(base=timedelta(seconds=10), max_attempts=3)
    delays = []
    for attempt in range(1, 4):
        await pool.execute("UPDATE subscriptions SET next_attempt_at = NULL WHERE id = $1", sub_id)
        async with pool.acquire() as connection:
            [claim], _ = await period_queue.claim(connection, limit=1, owner="t", lease=timedelta(seconds=30))
            parked = await period_queue.fail(connection, claim.lease, f"boom {attempt}", policy)
            delay = await connection.fetchval(
                "SELECT extract(epoch FROM next_attempt_at - now())::int FROM subscriptions WHERE id = $1",
                sub_id,
            )
        delays.append(delay)
        assert (parked is not None) == (attempt == 3)
    assert [round(d / 10) for d in delays] == [1, 2, 4]
    row = await pool.fetchrow("SELECT parked_reason, attempts FROM subscriptions WHERE id = $1", sub_id)
    assert row["attempts"] == 3
    assert row["parked_reason"] == "failed 3 times; last error: boom 3"
    # Parked means not claimable, until a person unparks it.
    async with pool.acquire() as connection:
        await pool.execute("UPDATE subscriptions SET next_attempt_at = NULL WHERE id = $1", sub_id)
        none = await period_queue.claim(connection, limit=1, owner="t", lease=timedelta(seconds=30))
        assert none == ([], [])
        assert await period_queue.unpark(connection, sub_id)
        leased, _ = await period_queue.claim(connection, limit=1, owner="t", lease=timedelta(seconds=30))
        assert len(leased) == 1


async def test_a_subscription_whose_workers_keep_dying_backs_off_then_is_parked(
    pool: asyncpg.Pool[Any],
) -> None:
    # Two due subscriptions. Every worker "dies" holding the first one: nothing ends its claim,
    # its lease just expires. The second one's claims end with an outcome (released), as a
    # living worker's do.
    dying, healthy = await _due(pool, 2)
    catalog = await world.snapshot(pool)
    policy = period_queue.RetryPolicy(base=timedelta(milliseconds=100), max_attempts=3)
    settings = InvoicerSettings(lease=timedelta(milliseconds=50), retry=policy, owner="w")
    store = PostgresInvoicerStore(pool, lambda: catalog, settings)
    backoffs = []
    with structlog.testing.capture_logs() as entries:
        for attempt in range(1, 4):
            claimed = await _claim_until(store, dying, healthy)
            if attempt > 1:  # the claim that leased it again came after the back-off of the death
                backoffs.append(claimed)
            await asyncio.sleep(0.1)  # past the dead worker's lease
        # The next claim finds the third expired lease: three attempts without an outcome.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while await pool.fetchval("SELECT parked_reason IS NULL FROM subscriptions WHERE id = $1", dying):
            assert loop.time() < deadline, "not parked"
            for claim in await store.claim(10):
                assert claim.subscription_id == healthy
                await store.release(claim)
            await asyncio.sleep(0.02)
    row = await pool.fetchrow(
        "SELECT parked_reason, attempts, lease_token FROM subscriptions WHERE id = $1", dying
    )
    reason = "worker died while working it: 3 attempts without an outcome, the last by w"
    assert (row["parked_reason"], row["attempts"], row["lease_token"]) == (reason, 3, None)
    assert await pool.fetchval("SELECT attempts FROM subscriptions WHERE id = $1", healthy) == 0
    # No job ran for the dead workers' attempts: the claims that found them say so in the log.
    found = [(e["event"], e["subscription_id"]) for e in entries if e.get("subscription_id")]
    assert found == [("lease expired without an outcome", dying)] * 2 + [("subscription parked", dying)]
    assert [e["reason"] for e in entries if e["event"] == "subscription parked"] == [reason]
    # The first death waited the back-off base (100 ms), the second twice that.
    assert backoffs[0] >= 0.1, backoffs
    assert backoffs[1] >= 0.2, backoffs
    # Parked means not claimable until a person unparks it; then it counts from zero again.
    async with pool.acquire() as connection:
        assert await period_queue.unpark(connection, dying)
    assert dying in [claim.subscription_id for claim in await store.claim(10)]
    assert await pool.fetchval("SELECT attempts FROM subscriptions WHERE id = $1", dying) == 0


async def _claim_until(store: PostgresInvoicerStore, wanted: str, healthy: str) -> float:
    """Claim until ``wanted`` is leased (releasing ``healthy`` whenever it is); the seconds since
    its previous lease expired with the worker "dead"."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    while True:
        claims = {claim.subscription_id: claim for claim in await store.claim(10)}
        if healthy in claims:
            await store.release(claims[healthy])
        if wanted in claims:
            return loop.time() - began
        assert loop.time() - began < 5, f"{wanted} was not leased again"
        await asyncio.sleep(0.01)


async def test_a_close_after_workers_died_on_it_clears_the_count(
    invoicer_url: str, pool: asyncpg.Pool[Any]
) -> None:
    [sub_id] = await _due(pool, 1)
    catalog = await world.snapshot(pool)
    policy = period_queue.RetryPolicy(base=timedelta(milliseconds=10))
    settings = InvoicerSettings(lease=timedelta(milliseconds=50), retry=policy, owner="dead")
    store = PostgresInvoicerStore(pool, lambda: catalog, settings)
    for _ in range(3):  # three workers die holding it: the third death is counted by the next claim
        await _claim_until(store, sub_id, "")
        await asyncio.sleep(0.1)
    async with running(invoicer_url, config()):
        assert await eventually(lambda: _has(pool, 1))
    row = await pool.fetchrow(
        "SELECT attempts, last_error, parked_reason FROM subscriptions WHERE id = $1", sub_id
    )
    assert (row["attempts"], row["last_error"], row["parked_reason"]) == (0, None, None)
