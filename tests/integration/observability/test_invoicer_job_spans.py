"""An invoicer job continues the trace of the RPC that wrote its subscription (DESIGN.md §8).

The session's sampler samples no root and follows the parent, so the job of a row whose stored
traceparent is sampled gets a span in that trace, and the job of an unsampled one gets none.
"""

from __future__ import annotations

import secrets
from typing import Any

import asyncpg

from billing.store.database import create_pool
from billing.telemetry import Telemetry
from tests import invoicer_world as world
from tests.conftest import CreateDatabase
from tests.integration.invoicer.conftest import config, eventually, running
from tests.integration.observability.conftest import SPANS


async def test_a_job_span_continues_the_stored_trace_and_an_unsampled_one_makes_none(
    telemetry: Telemetry, create_database: CreateDatabase
) -> None:
    url = await create_database(migrated=True)
    pool: asyncpg.Pool[Any] = await create_pool(url, max_size=4)
    try:
        ids = await world.simple_catalog(pool)
        catalog = await world.snapshot(pool)
        sampled, unsampled = await world.subscribe(
            pool, catalog, await world.customers(pool, 2), start=world.month_ago(), seats=[1, 1],
            prices=[ids.seat_price, ids.message_price],
        )  # fmt: skip
        trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
        stored = {
            sampled: f"00-{trace_id}-{parent_id}-01",
            unsampled: f"00-{secrets.token_hex(16)}-{parent_id}-00",
        }
        for subscription_id, traceparent in stored.items():
            await pool.execute(
                "UPDATE subscriptions SET traceparent = $2 WHERE id = $1", subscription_id, traceparent
            )
        SPANS.clear()

        async def closed() -> bool:
            count: int = await pool.fetchval("SELECT count(*) FROM invoices")
            return count >= 2

        async with running(url, config(poll=0.2)):
            assert await eventually(closed, seconds=30)
    finally:
        await pool.close()

    jobs = [s for s in SPANS.get_finished_spans() if s.name == "invoicer.work"]
    assert jobs, "the sampled job made no span"
    assert {s.attributes["subscription.id"] for s in jobs if s.attributes} == {sampled}
    for span in jobs:
        assert span.context is not None
        assert span.parent is not None
        assert f"{span.context.trace_id:032x}" == trace_id
        assert f"{span.parent.span_id:016x}" == parent_id
