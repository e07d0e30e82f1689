"""Loading the whole catalog as one consistent snapshot, and noticing when it changes.

The rating service quotes from memory. A snapshot is read in one REPEATABLE READ transaction,
version included, so it is exactly the catalog of that version; ``version_watch`` reloads it
when the stored version moves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from billing.domain.catalog import Catalog
from billing.store.tables import ADDONS, COUPONS, METERS, PLANS, PRICES, PRODUCTS, Table
from billing.store.version_watch import watch_version

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
    await watch_version(
        pool,
        channel=CHANNEL,
        stored_version=current_version,
        load=load_catalog,
        current=current,
        publish=publish,
        poll_interval=poll_interval,
    )
