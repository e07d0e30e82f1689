"""Test clocks: advancing a clock closes its customers' periods up to its time, and nobody else's."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from billing.domain.subscriptions import NewSubscription, create_subscription
from billing.store import subscriptions as rows
from billing.store.ids import new_id
from tests import invoicer_world as world
from tests.integration.invoicer.conftest import config, eventually, running


async def _clock_backlog(pool: asyncpg.Pool[Any], clock_id: str) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM subscriptions s JOIN test_clocks c ON c.id = s.test_clock_id "
        "WHERE c.id = $1 AND s.due_at <= c.frozen_time AND s.parked_reason IS NULL",
        clock_id,
    )
    return count


async def test_advancing_a_clock_closes_every_period_up_to_its_time_and_no_real_customer(
    invoicer_url: str, pool: asyncpg.Pool[Any]
) -> None:
    ids = await world.simple_catalog(pool)
    catalog = await world.snapshot(pool)
    [simulated, real] = await world.customers(pool, 2)
    frozen = datetime(2031, 1, 31, 9, 0, tzinfo=UTC)
    clock_id = new_id("clock")
    await pool.execute("INSERT INTO test_clocks (id, frozen_time) VALUES ($1, $2)", clock_id, frozen)
    await pool.execute("UPDATE customers SET test_clock_id = $1 WHERE id = $2", clock_id, simulated)
    # On the clock: created at its time, so its first invoice (the fees of January 31) is due now.
    new = NewSubscription(new_id("sub"), simulated, "USD", "UTC", prices=(), start=frozen)
    sub = create_subscription(
        dataclasses.replace(new, prices=(_item(ids.seat_price, 4), _item(ids.message_price, 1))),
        catalog,
        frozen,
    )
    async with pool.acquire() as connection:
        await rows.insert(connection, rows.SubscriptionRecord(sub.id, simulated, "USD", sub.status.value, sub,
                                                               sub.next_close_at))  # fmt: skip
    # A real customer whose next boundary (in real time) is long before the clock's time.
    [real_sub] = await world.subscribe(pool, catalog, [real], start=datetime.now(UTC) - timedelta(days=1),
                                       seats=[2], prices=[ids.seat_price, ids.message_price])  # fmt: skip
    real_before = await pool.fetchrow("SELECT * FROM subscriptions WHERE id = $1", real_sub)

    async with running(invoicer_url, config()):
        assert await eventually(lambda: _has_invoices(pool, 1))
        # Advance past three month ends (Feb 28, Mar 31, Apr 30) and their grace windows.
        await pool.execute(
            "UPDATE test_clocks SET frozen_time = $2 WHERE id = $1",
            clock_id,
            datetime(2031, 5, 1, tzinfo=UTC),
        )
        assert await eventually(lambda: _done(pool, clock_id, 4))

    invoices = await pool.fetch(
        "SELECT boundary, status, number_seq FROM invoices WHERE subscription_id = $1 ORDER BY boundary",
        sub.id,
    )
    assert [r["boundary"].date().isoformat() for r in invoices] == [
        "2031-01-31", "2031-02-28", "2031-03-31", "2031-04-30",
    ]  # fmt: skip
    assert all(r["status"] == "open" for r in invoices)
    assert [r["number_seq"] for r in invoices] == [1, 2, 3, 4]
    assert await _clock_backlog(pool, clock_id) == 0
    # The real customer was never touched: no invoice, the very same row.
    assert await pool.fetchval("SELECT count(*) FROM invoices WHERE subscription_id = $1", real_sub) == 0
    assert await pool.fetchrow("SELECT * FROM subscriptions WHERE id = $1", real_sub) == real_before


def _item(price_id: str, quantity: int) -> Any:
    from billing.domain.subscriptions import PriceItem

    return PriceItem(price_id, Decimal(quantity))


async def _has_invoices(pool: asyncpg.Pool[Any], count: int) -> bool:
    return await pool.fetchval("SELECT count(*) FROM invoices") >= count


async def _done(pool: asyncpg.Pool[Any], clock_id: str, count: int) -> bool:
    finalized = await pool.fetchval("SELECT count(*) FROM invoices WHERE status = 'open'")
    return finalized >= count and await _clock_backlog(pool, clock_id) == 0
