"""Noticing that a versioned in-memory copy (the catalog, the API tokens) is stale.

A writer bumps a version row and sends NOTIFY in the same transaction. LISTEN/NOTIFY only wakes
the watcher early; polling the version every ``poll_interval`` is what guarantees a change is
seen (a notification is lost while the listening connection reconnects, DESIGN.md §6).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

T = TypeVar("T")

log = structlog.get_logger(__name__)


async def watch_version(
    pool: asyncpg.Pool[Any],
    *,
    channel: str,
    stored_version: Callable[[asyncpg.Pool[Any]], Awaitable[int]],
    load: Callable[[asyncpg.Pool[Any]], Awaitable[T]],
    current: Callable[[], int],
    publish: Callable[[T], Awaitable[None] | None],
    poll_interval: float,
) -> None:
    """Publish ``load(pool)`` whenever the stored version moves past ``current()``. Runs forever."""
    wake = asyncio.Event()
    listener: PoolConnectionProxy[Any] | None = None

    def on_notify(*_: object) -> None:
        wake.set()

    try:
        while True:
            try:
                if listener is None:
                    listener = await pool.acquire()
                    await listener.add_listener(channel, on_notify)
                if await stored_version(pool) > current():
                    result = publish(await load(pool))
                    if result is not None:
                        await result
            except Exception as error:
                # Polling retries: the database may be coming back. Readers go on from the
                # last copy meanwhile, which is still a consistent one.
                log.warning("refresh failed", channel=channel, error=type(error).__name__)
                stale, listener = listener, None
                await _release(pool, stale, channel, on_notify)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), poll_interval)
            wake.clear()
    finally:
        await _release(pool, listener, channel, on_notify)


# UNLISTEN on a connection whose server went away can wait for a TCP timeout; give up sooner.
_RELEASE_TIMEOUT_S = 5.0


async def _release(
    pool: asyncpg.Pool[Any],
    listener: PoolConnectionProxy[Any] | None,
    channel: str,
    callback: Callable[..., None],
) -> None:
    """Give the listening connection back. One that cannot UNLISTEN (cut mid-query) is terminated
    instead; one the pool already took back (its server connection died) needs nothing."""
    if listener is None:
        return
    try:
        await asyncio.wait_for(listener.remove_listener(channel, callback), _RELEASE_TIMEOUT_S)
    except Exception:
        with contextlib.suppress(Exception):
            listener.terminate()
    with contextlib.suppress(Exception):
        await pool.release(listener)
