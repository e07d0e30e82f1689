"""billing.store.database: connection settings against the test run's server."""

from __future__ import annotations

from urllib.parse import urlsplit

from billing.store.database import connect, create_pool, with_database


def test_with_database_keeps_host_and_query() -> None:
    assert (
        with_database("postgresql://postgres:@/postgres?host=/tmp/x/pgdata", "other")
        == "postgresql://postgres:@/other?host=/tmp/x/pgdata"
    )
    assert (
        with_database("postgresql://u:p@127.0.0.1:5432/postgres?sslmode=disable", "db")
        == "postgresql://u:p@127.0.0.1:5432/db?sslmode=disable"
    )
    assert with_database("postgres://h", "db") == "postgres://h/db"


async def test_pool_and_connection_share_the_session_settings(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT current_database() AS db, current_setting('jit') AS jit,"
                " current_setting('application_name') AS app,"
                " current_setting('TimeZone') AS tz"
            )
    finally:
        await pool.close()
    assert row is not None
    assert dict(row) == {
        "db": urlsplit(database_url).path.lstrip("/"),
        "jit": "off",
        "app": "billing",
        "tz": "UTC",
    }

    single = await connect(database_url, application_name="billing-test")
    try:
        assert await single.fetchval("SELECT current_setting('application_name')") == "billing-test"
    finally:
        await single.close()
