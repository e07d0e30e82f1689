"""Fixtures for the invoicer's integration tests: a database of their own, and in-process workers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from billing.store.database import create_pool
from invoicer.main import InvoicerConfig, run_invoicer
from invoicer.worker import WorkerConfig
from tests.conftest import CreateDatabase


@pytest.fixture
async def invoicer_url(create_database: CreateDatabase) -> str:
    """A fresh migrated database per test: the queue is global, so tests must not share one."""
    return await create_database(migrated=True)


@pytest.fixture
async def pool(invoicer_url: str) -> AsyncIterator[asyncpg.Pool[Any]]:
    created = await create_pool(invoicer_url, max_size=6)
    yield created
    await created.close()


def config(
    *, grace: timedelta = timedelta(hours=1), poll: float = 0.2, owner: str = "", **worker: Any
) -> InvoicerConfig:
    return InvoicerConfig(
        worker=WorkerConfig(grace=grace, poll_interval=poll, **worker),
        lease=timedelta(seconds=5),
        owner=owner,
    )


@contextlib.asynccontextmanager
async def running(url: str, settings: InvoicerConfig) -> AsyncIterator[None]:
    """An invoicer worker in this event loop, stopped (drained) on exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_invoicer(url, settings, stop))
    try:
        yield
    finally:
        stop.set()
        await task


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 30.0) -> bool:
    """Poll ``check`` until it holds or ``seconds`` pass (the database is what we wait on)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not await check():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True
