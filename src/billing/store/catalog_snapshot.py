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
import structlog
from asyncpg.pool import PoolConnectionProxy

from billing.domain.catalog import Catalog
from billing.store.tables import ADDONS, COUPONS, METERS, PLANS, PRICES, PRODUCTS, Table

CHANNEL = "catalog_changed"

log = structlog.get_logger(__name__)


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
            except Exception as error:
                # Polling retries: the database may be coming back. Quotes go on from the
                # last snapshot meanwhile, which is still a consistent catalog.
                log.warning("catalog refresh failed", error=type(error).__name__)
                stale, listener = listener, None
                await _release(pool, stale, on_notify)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), poll_interval)
            wake.clear()
    finally:
        await _release(pool, listener, on_notify)


async def _release(
    pool: asyncpg.Pool[Any], listener: PoolConnectionProxy[Any] | None, callback: Callable[..., None]
) -> None:
    """Give the listening connection back. One that cannot UNLISTEN (cut mid-query) is terminated
    instead; one the pool already took back (its server connection died) needs nothing."""
    if listener is None:
        return
    try:
        await listener.remove_listener(CHANNEL, callback)
    except Exception:
        with contextlib.suppress(Exception):
            listener.terminate()
    with contextlib.suppress(Exception):
        await pool.release(listener)
