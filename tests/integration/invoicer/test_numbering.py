"""Invoice numbers are gapless per issuing entity, also when finalizations race and one rolls back."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import asyncpg

from billing.store import invoices
from tests import invoicer_world as world
from tests.integration.invoicer.conftest import config, eventually, running

SUBSCRIPTIONS = 120


async def test_concurrent_workers_number_every_finalized_invoice_without_a_gap(
    invoicer_url: str, pool: asyncpg.Pool[Any]
) -> None:
    ids = await world.simple_catalog(pool)
    catalog = await world.snapshot(pool)
    customers = await world.customers(pool, SUBSCRIPTIONS)
    await world.subscribe(pool, catalog, customers, start=world.month_ago(), seats=[1] * SUBSCRIPTIONS,
                          prices=[ids.seat_price, ids.message_price])  # fmt: skip
    # A finalization that took a number and rolled back must give it back.
    async with pool.acquire() as connection:
        transaction = connection.transaction()
        await transaction.start()
        assert (await invoices.next_number(connection, "default"))[0] == 1
        await transaction.rollback()

    async def all_open() -> bool:
        return await pool.fetchval("SELECT count(*) FROM invoices WHERE status <> 'draft'") == SUBSCRIPTIONS

    workers = [
        running(invoicer_url, config(grace=timedelta(0), owner=f"w{i}", concurrency=8)) for i in range(4)
    ]
    async with workers[0], workers[1], workers[2], workers[3]:
        assert await eventually(all_open, seconds=90)
    numbers = [
        r["number_seq"] for r in await pool.fetch("SELECT number_seq FROM invoices ORDER BY number_seq")
    ]
    assert numbers == list(range(1, SUBSCRIPTIONS + 1))
    texts = await pool.fetch("SELECT number FROM invoices ORDER BY number_seq LIMIT 2")
    assert [r["number"] for r in texts] == ["INV-000001", "INV-000002"]
    events = await pool.fetchval("SELECT count(*) FROM outbox_events WHERE type = 'invoice.finalized'")
    assert events == SUBSCRIPTIONS


async def test_numbers_are_counted_per_issuing_entity(pool: asyncpg.Pool[Any]) -> None:
    async def take(entity: str) -> int:
        async with pool.acquire() as connection, connection.transaction():
            return (await invoices.next_number(connection, entity))[0]

    taken = await asyncio.gather(*(take(e) for e in ["eu", "us", "eu", "eu", "us"]))
    assert sorted(n for n, e in zip(taken, ["eu", "us", "eu", "eu", "us"], strict=True) if e == "eu") == [
        1,
        2,
        3,
    ]
    assert sorted(n for n, e in zip(taken, ["eu", "us", "eu", "eu", "us"], strict=True) if e == "us") == [
        1,
        2,
    ]
