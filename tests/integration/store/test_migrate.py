"""billing.store.migrate against a real PostgreSQL (DATABASE_URL or embedded)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from billing.domain.tax import BUILT_IN
from billing.store.database import connect
from billing.store.invoicer_store import load_tax_table
from billing.store.migrate import (
    ChecksumMismatchError,
    Migration,
    MigrationError,
    load_migrations,
    migrate,
)

CreateDatabase = Callable[..., Awaitable[str]]  # the conftest fixture's type


async def _applied(url: str) -> list[asyncpg.Record]:
    conn = await connect(url)
    try:
        return await conn.fetch("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
    finally:
        await conn.close()


async def _table_exists(url: str, table: str) -> bool:
    conn = await connect(url)
    try:
        return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table))
    finally:
        await conn.close()


def test_packaged_migrations_are_found_in_order() -> None:
    migrations = load_migrations()
    assert migrations, "no migrations shipped in billing/store/migrations"
    versions = [int(m.version) for m in migrations]
    assert versions == sorted(versions)
    assert len(set(versions)) == len(versions)


async def test_empty_database_migrates_then_second_run_applies_nothing(
    create_database: CreateDatabase,
) -> None:
    url = await create_database()
    expected = load_migrations()

    assert await migrate(url) == [m.version for m in expected]
    assert await migrate(url) == []

    rows = await _applied(url)
    assert [(r["version"], r["name"], r["checksum"]) for r in rows] == [
        (m.version, m.name, m.checksum) for m in expected
    ]


async def test_migrate_accepts_an_open_connection(create_database: CreateDatabase) -> None:
    url = await create_database()
    conn = await connect(url)
    try:
        assert await migrate(conn) == [m.version for m in load_migrations()]
        assert await migrate(conn) == []
        # The advisory lock is released: another session can take it at once.
        other = await connect(url)
        try:
            assert await migrate(other) == []
        finally:
            await other.close()
    finally:
        await conn.close()


async def test_tampered_checksum_is_refused(create_database: CreateDatabase) -> None:
    url = await create_database(migrated=True)
    first = load_migrations()[0]
    conn = await connect(url)
    try:
        await conn.execute(
            "UPDATE schema_migrations SET checksum = 'tampered' WHERE version = $1",
            first.version,
        )
    finally:
        await conn.close()

    with pytest.raises(ChecksumMismatchError, match=first.filename):
        await migrate(url)


async def test_edited_migration_file_is_refused_and_nothing_applied(
    create_database: CreateDatabase, tmp_path: Path
) -> None:
    url = await create_database()
    (tmp_path / "0001_a.sql").write_text("CREATE TABLE a (id int);\n")
    assert await migrate(url, migrations=load_migrations(tmp_path)) == ["0001"]

    # Only line endings changed: the same migration, not an edit.
    (tmp_path / "0001_a.sql").write_bytes(b"CREATE TABLE a (id int);\r\n")
    assert await migrate(url, migrations=load_migrations(tmp_path)) == []

    (tmp_path / "0001_a.sql").write_text("CREATE TABLE a (id bigint);\n")
    (tmp_path / "0002_b.sql").write_text("CREATE TABLE b (id int);\n")
    with pytest.raises(ChecksumMismatchError, match=r"0001_a\.sql"):
        await migrate(url, migrations=load_migrations(tmp_path))
    assert not await _table_exists(url, "b")


async def test_concurrent_migrators_apply_each_migration_once(
    create_database: CreateDatabase,
) -> None:
    url = await create_database()
    # Not idempotent on purpose: a second application would fail with DuplicateTable.
    migrations = [
        Migration("0001", "slow", "CREATE TABLE slow (id int); SELECT pg_sleep(0.3);"),
        Migration("0002", "counter", "CREATE TABLE counter (n int); INSERT INTO counter VALUES (1)"),
    ]

    results = await asyncio.gather(*(migrate(url, migrations=migrations) for _ in range(6)))

    assert sorted(v for r in results for v in r) == ["0001", "0002"]
    assert results.count(["0001", "0002"]) == 1
    assert [r["version"] for r in await _applied(url)] == ["0001", "0002"]


async def test_concurrent_migrators_with_packaged_migrations(
    create_database: CreateDatabase,
) -> None:
    url = await create_database()
    results = await asyncio.gather(*(migrate(url) for _ in range(4)))
    assert sorted(v for r in results for v in r) == [m.version for m in load_migrations()]


async def test_failed_migration_rolls_back_completely(
    create_database: CreateDatabase,
) -> None:
    url = await create_database()
    good = Migration("0001", "good", "CREATE TABLE good (id int);")
    bad = Migration("0002", "bad", "CREATE TABLE half (id int); SELEC 1;")

    with pytest.raises(MigrationError, match=r"0002_bad\.sql"):
        await migrate(url, migrations=[good, bad])

    assert [r["version"] for r in await _applied(url)] == ["0001"]
    assert not await _table_exists(url, "half")
    fixed = Migration("0002", "bad", "CREATE TABLE half (id int);")
    assert await migrate(url, migrations=[good, fixed]) == ["0002"]


async def test_pending_migration_older_than_applied_is_refused(
    create_database: CreateDatabase,
) -> None:
    url = await create_database()
    one = Migration("0001", "one", "CREATE TABLE one (id int);")
    three = Migration("0003", "three", "CREATE TABLE three (id int);")
    two = Migration("0002", "two", "CREATE TABLE two (id int);")
    await migrate(url, migrations=[one, three])

    with pytest.raises(MigrationError, match=r"0002_two\.sql"):
        await migrate(url, migrations=[one, two, three])


async def test_newer_applied_versions_from_a_newer_release_are_ignored(
    create_database: CreateDatabase,
) -> None:
    url = await create_database()
    one = Migration("0001", "one", "CREATE TABLE one (id int);")
    two = Migration("0002", "two", "CREATE TABLE two (id int);")
    await migrate(url, migrations=[one, two])

    assert await migrate(url, migrations=[one]) == []
    with pytest.raises(MigrationError, match="0001"):
        await migrate(url, migrations=[two])  # 0001 deleted from the build


def test_badly_named_or_duplicate_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "init.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"init\.sql"):
        load_migrations(tmp_path)

    (tmp_path / "init.sql").unlink()
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "00001_b.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="share version 1"):
        load_migrations(tmp_path)


async def test_the_seeded_tax_rates_are_the_domain_built_in_table(create_database: CreateDatabase) -> None:
    """The invoicer rates from the tax_rates table; previews without a database (simulation,
    the domain's default) rate from BUILT_IN. A rate changed in one place only would make a
    preview and its invoice disagree."""
    conn = await connect(await create_database(migrated=True))
    try:
        assert await load_tax_table(conn) == BUILT_IN
    finally:
        await conn.close()
