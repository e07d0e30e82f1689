"""Fencing: a worker whose lease was lost, or whose subscription changed under it, writes nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from billing.domain.errors import Aborted
from billing.domain.invoices import close_boundary
from billing.store import subscriptions
from billing.store.invoicer_store import InvoicerSettings, PostgresInvoicerStore
from billing.store.period_queue import Claimed, RetryPolicy
from tests import invoicer_world as world


async def _one_due(pool: asyncpg.Pool[Any]) -> tuple[str, Any]:
    ids = await world.simple_catalog(pool)
    catalog = await world.snapshot(pool)
    customers = await world.customers(pool, 1)
    [sub_id] = await world.subscribe(
        pool,
        catalog,
        customers,
        start=world.month_ago(),
        seats=[2],
        prices=[ids.seat_price, ids.message_price],
    )
    return sub_id, catalog


def _store(pool: asyncpg.Pool[Any], catalog: Any, owner: str, lease: float) -> PostgresInvoicerStore:
    # An expired lease counts as a failed attempt and backs off before the row is leased again:
    # 50 ms here.
    retry = RetryPolicy(base=timedelta(milliseconds=50))
    return PostgresInvoicerStore(
        pool, lambda: catalog, InvoicerSettings(timedelta(seconds=lease), retry=retry, owner=owner)
    )


async def _claim_one(store: PostgresInvoicerStore) -> Claimed:
    for _ in range(100):
        claims = await store.claim(10)
        if claims:
            [claim] = claims
            return claim
        await asyncio.sleep(0.02)
    raise AssertionError("nothing to claim")


async def test_a_worker_paused_past_its_lease_cannot_write_after_another_closed_the_period(
    pool: asyncpg.Pool[Any],
) -> None:
    _, catalog = await _one_due(pool)
    paused, other = _store(pool, catalog, "paused", 0.3), _store(pool, catalog, "other", 30)
    [claim] = await paused.claim(10)
    inputs = await paused.close_inputs(claim)
    result = close_boundary(inputs)
    await asyncio.sleep(0.5)  # the "pause": the lease expires meanwhile
    taken = await _claim_one(other)
    other_inputs = await other.close_inputs(taken)
    await other.commit_close(
        taken, other_inputs, close_boundary(other_inputs), other_inputs.subscription.boundary(2)
    )
    with pytest.raises(Aborted, match="lease"):
        await paused.commit_close(claim, inputs, result, inputs.subscription.boundary(2))
    assert await pool.fetchval("SELECT count(*) FROM invoices") == 1


async def test_a_lease_that_expired_unclaimed_still_refuses_the_late_write(pool: asyncpg.Pool[Any]) -> None:
    _, catalog = await _one_due(pool)
    slow = _store(pool, catalog, "slow", 0.2)
    [claim] = await slow.claim(10)
    inputs = await slow.close_inputs(claim)
    await asyncio.sleep(0.4)
    with pytest.raises(Aborted, match="lease"):
        await slow.commit_close(claim, inputs, close_boundary(inputs), inputs.subscription.boundary(2))
    assert await pool.fetchval("SELECT count(*) FROM invoices") == 0
    # Nothing was lost: the period is still due and a live worker closes it (the worker releases
    # a lease it learns it lost; the slow worker's own one had expired unclaimed).
    await slow.release(claim)
    [again] = await slow.claim(10)
    retry = await slow.close_inputs(again)
    await slow.commit_close(again, retry, close_boundary(retry), retry.subscription.boundary(2))
    assert await pool.fetchval("SELECT count(*) FROM invoices") == 1


async def test_a_close_rated_before_an_api_change_is_refused_and_rated_again(pool: asyncpg.Pool[Any]) -> None:
    sub_id, catalog = await _one_due(pool)
    store = _store(pool, catalog, "worker", 30)
    [claim] = await store.claim(10)
    inputs = await store.close_inputs(claim)
    async with pool.acquire() as connection:  # the API changes the subscription meanwhile
        record = await subscriptions.get(connection, sub_id)
        changed = subscriptions.with_state(record, record.state, status=record.status)
        await subscriptions.update(connection, changed)
    with pytest.raises(Aborted, match="changed"):
        await store.commit_close(claim, inputs, close_boundary(inputs), inputs.subscription.boundary(2))
    assert await pool.fetchval("SELECT count(*) FROM invoices") == 0
    assert await pool.fetchval("SELECT version FROM subscriptions WHERE id = $1", sub_id) == 2


async def test_the_unique_constraint_refuses_a_second_invoice_for_one_boundary(
    pool: asyncpg.Pool[Any],
) -> None:
    sub_id, catalog = await _one_due(pool)
    store = _store(pool, catalog, "worker", 30)
    [claim] = await store.claim(10)
    inputs = await store.close_inputs(claim)
    await store.commit_close(claim, inputs, close_boundary(inputs), inputs.subscription.boundary(2))
    with pytest.raises(asyncpg.UniqueViolationError, match="invoices_subscription_boundary_key"):
        await pool.execute(
            "INSERT INTO invoices (id, customer_id, subscription_id, boundary, kind, currency) "
            "SELECT 'in_copy', customer_id, subscription_id, boundary, kind, currency FROM invoices"
        )
    assert (
        Decimal(await pool.fetchval("SELECT count(*) FROM invoices WHERE subscription_id = $1", sub_id)) == 1
    )
