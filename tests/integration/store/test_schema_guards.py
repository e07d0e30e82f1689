"""Rules the database enforces by itself, whatever the application code does."""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import pytest

from billing.domain.catalog import Interval, Price, Product, Recurring
from billing.domain.pricing import PerUnit
from billing.store.database import create_pool
from billing.store.unit_of_work import PostgresUnitOfWork
from rating.usecases import catalog


async def _seed_price(url: str) -> str:
    pool = await create_pool(url, min_size=1, max_size=1)
    try:
        async with PostgresUnitOfWork(pool) as uow:
            product = await catalog.create_product(uow, Product("", "Guarded"))
            price = await catalog.create_price(
                uow, Price("", product.id, "USD", PerUnit(Decimal(100)), Recurring(Interval.MONTH))
            )
            await uow.commit()
        return price.id
    finally:
        await pool.close()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE prices SET model = jsonb_set(model, '{unit_amount}', '\"90\"') WHERE id = $1",
        "UPDATE prices SET currency = 'EUR' WHERE id = $1",
        "UPDATE prices SET version = 2 WHERE id = $1",
        "DELETE FROM prices WHERE id = $1",
    ],
)
async def test_what_a_price_charges_cannot_be_changed_even_in_sql(migrated_url: str, statement: str) -> None:
    price_id = await _seed_price(migrated_url)
    connection = await asyncpg.connect(migrated_url)
    try:
        with pytest.raises(asyncpg.CheckViolationError, match="price"):
            await connection.execute(statement, price_id)
        # Presentation fields stay editable.
        await connection.execute(
            "UPDATE prices SET nickname = 'renamed', archived = true WHERE id = $1", price_id
        )
    finally:
        await connection.close()


async def test_every_catalog_write_moves_the_catalog_version(migrated_url: str) -> None:
    connection = await asyncpg.connect(migrated_url)
    try:
        before = await connection.fetchval("SELECT version FROM catalog_state")
        await connection.execute(
            "INSERT INTO products (id, display_name) VALUES ('prod_version_probe', 'Probe')"
        )
        after = await connection.fetchval("SELECT version FROM catalog_state")
        assert after > before
    finally:
        await connection.close()
