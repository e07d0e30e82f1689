"""Migration 0008 recomputes the fingerprint of keys stored before it, so replays still match."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from billing.domain.usage import Stored, UsageRows
from billing.store.database import connect
from billing.store.migrate import load_migrations, migrate
from billing.store.usage import insert_usage

CreateDatabase = Callable[..., Awaitable[str]]  # the conftest fixture's type
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def test_a_key_stored_before_0008_still_dedupes_and_still_refuses_another_payload(
    create_database: CreateDatabase,
) -> None:
    url = await create_database()
    migrations = load_migrations()
    before = [m for m in migrations if m.version < "0008"]
    assert await migrate(url, migrations=before)
    connection = await connect(url)
    try:
        at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        key = f"key-{uuid.uuid4().hex}"
        await connection.execute(
            "INSERT INTO customers (id, display_name, currency) VALUES ('cus_old', 'Old Co', 'USD')"
        )
        # As the 0007 statement stored it, with a fingerprint 0008 must not rely on.
        await connection.execute(
            "INSERT INTO usage_events "
            "(occurred_at, idempotency_key, customer_id, meter_id, properties, value) "
            "VALUES ($1, $2, 'cus_old', 'meter_a', '{\"b\": 1, \"a\": \"x\"}', 1.50)",
            at,
            key,
        )
        await connection.execute(
            "INSERT INTO usage_keys (idempotency_key, fingerprint, occurred_at, customer_id, meter_id) "
            "VALUES ($1, gen_random_uuid(), $2, 'cus_old', 'meter_a')",
            key,
            at,
        )
        assert await migrate(connection) == ["0008"]

        micros = (at - EPOCH) // timedelta(microseconds=1)

        def replay(value: str) -> UsageRows:
            rows = UsageRows()
            rows.add(key, "cus_old", "", "meter_a", micros, '{"a":"x","b":1}', value)
            return rows

        assert await insert_usage(connection, replay("1.5")) == [Stored.DUPLICATE]
        assert await insert_usage(connection, replay("2")) == [Stored.CONFLICT]
        values = await connection.fetch("SELECT value FROM usage_events WHERE idempotency_key = $1", key)
        assert [r["value"] for r in values] == [Decimal("1.50")]
    finally:
        await connection.close()
