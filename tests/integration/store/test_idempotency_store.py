"""Two callers with one request_id at the same time: the second gets the first's answer."""

from __future__ import annotations

import asyncio

import asyncpg

from billing.domain.catalog import Product
from billing.store.database import create_pool
from billing.store.unit_of_work import PostgresUnitOfWork
from rating.usecases import catalog
from rating.usecases.idempotency import RequestKey, run_once
from rating.usecases.ports import UnitOfWork


async def test_a_concurrent_retry_waits_for_the_first_call_and_returns_its_answer(migrated_url: str) -> None:
    pool = await create_pool(migrated_url, min_size=2, max_size=4)
    first_wrote, finish_first = asyncio.Event(), asyncio.Event()
    key = RequestKey("store-concurrent-1", "CreateProduct", b"same payload")

    async def slow_first(uow: UnitOfWork) -> str:
        product = await catalog.create_product(uow, Product("", "Raced"))
        first_wrote.set()
        await finish_first.wait()
        return product.id

    async def second(uow: UnitOfWork) -> str:
        return (await catalog.create_product(uow, Product("", "Raced"))).id

    def unit() -> PostgresUnitOfWork:
        return PostgresUnitOfWork(pool)

    try:
        first = asyncio.create_task(run_once(unit, key, slow_first, str.encode, bytes.decode))
        await first_wrote.wait()
        retry = asyncio.create_task(run_once(unit, key, second, str.encode, bytes.decode))
        await asyncio.sleep(0.2)
        assert not retry.done(), "the retry did not wait for the call in flight"
        finish_first.set()
        assert await retry == await first
    finally:
        await pool.close()
    connection = await asyncpg.connect(migrated_url)
    try:
        assert await connection.fetchval("SELECT count(*) FROM products WHERE display_name = 'Raced'") == 1
    finally:
        await connection.close()
