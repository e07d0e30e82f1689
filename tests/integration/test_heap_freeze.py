"""Both long-running processes move their start-up objects out of the collector's sight
(``billing.heap``): a full collection of them took 25-35 ms, a pause of every call in flight.
What that buys is measured by bench/noisy_neighbour.py; here, that each process does it."""

from __future__ import annotations

import gc

from rating.server import ServerConfig, start_server
from tests.conftest import CreateDatabase
from tests.integration.invoicer.conftest import config, eventually, running


async def test_the_rating_server_freezes_its_start_up_heap(create_database: CreateDatabase) -> None:
    url = await create_database(migrated=True)
    gc.unfreeze()  # whatever an earlier test froze
    server = await start_server(url, ServerConfig(port=0, grace_seconds=1))
    try:
        assert gc.get_freeze_count() > 10_000
    finally:
        await server.stop(1)
        gc.unfreeze()


async def test_the_invoicer_freezes_its_start_up_heap(create_database: CreateDatabase) -> None:
    url = await create_database(migrated=True)
    gc.unfreeze()
    try:
        async with running(url, config(poll=0.1)):

            async def frozen() -> bool:
                return gc.get_freeze_count() > 10_000

            assert await eventually(frozen, seconds=10)
    finally:
        gc.unfreeze()
