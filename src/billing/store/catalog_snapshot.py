"""Loading the whole catalog as one consistent snapshot, and noticing when it changes.

The rating service quotes from memory. A snapshot is read in one REPEATABLE READ transaction,
version included, so it is exactly the catalog of that version. LISTEN/NOTIFY wakes the watcher
early; polling the version row every ``poll_interval`` is what guarantees a change is seen
(a notification can be lost while the listening connection reconnects).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from billing.domain.catalog import Catalog
from billing.store.tables import ADDONS, COUPONS, METERS, PLANS, PRICES, PRODUCTS, Table
from billing.store.unit_of_work import CONNECTION_ERRORS

CHANNEL = "catalog_changed"


async def _all(connection: PoolConnectionProxy[Any], table: Table[Any]) -> dict[str, Any]:
    rows = await connection.fetch(f"SELECT * FROM {table.name}")
    return {row["id"]: table.from_row(row) for row in rows}


async def load_catalog(pool: asyncpg.Pool[Any]) -> Catalog:
    async with (
        pool.acquire() as connection,
        connection.transaction(isolation="repeatable_read", readonly=True),
    ):
        version = await connection.fetchval("SELECT version FROM catalog_state")
        return Catalog(
            version=version,
            products=await _all(connection, PRODUCTS),
            meters=await _all(connection, METERS),
            prices=await _all(connection, PRICES),
            plans=await _all(connection, PLANS),
            addons=await _all(connection, ADDONS),
            coupons=await _all(connection, COUPONS),
        )


async def current_version(pool: asyncpg.Pool[Any]) -> int:
    version: int = await pool.fetchval("SELECT version FROM catalog_state")
    return version


async def watch_catalog(
    pool: asyncpg.Pool[Any],
    current: Callable[[], int],
    publish: Callable[[Catalog], Awaitable[None] | None],
    *,
    poll_interval: float = 0.25,
) -> None:
    """Publish a new snapshot whenever the stored version moves past ``current()``. Runs forever."""
    wake = asyncio.Event()
    listener: PoolConnectionProxy[Any] | None = None

    def on_notify(*_: object) -> None:
        wake.set()

    try:
        while True:
            try:
                if listener is None:
                    listener = await pool.acquire()
                    await listener.add_listener(CHANNEL, on_notify)
                if await current_version(pool) > current():
                    result = publish(await load_catalog(pool))
                    if result is not None:
                        await result
            except CONNECTION_ERRORS:
                # Polling retries; the database may be coming back.
                await _release(pool, listener)
                listener = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), poll_interval)
            wake.clear()
    finally:
        await _release(pool, listener)


async def _release(pool: asyncpg.Pool[Any], listener: PoolConnectionProxy[Any] | None) -> None:
    if listener is not None:
        with contextlib.suppress(*CONNECTION_ERRORS):
            await pool.release(listener)
