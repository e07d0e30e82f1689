"""Shared fixtures: one PostgreSQL server per test run, and fresh databases on it.

Which server:

- ``DATABASE_URL`` set: that server (its user needs ``CREATEDB``). Databases created here
  are named ``billing_test_<run hex>_<n>`` and dropped ``WITH (FORCE)`` at session end.
- ``DATABASE_URL`` unset: an :class:`~billing.store.embedded.EmbeddedPostgres` in a new
  temporary directory (fresh per run), stopped and deleted at session end. Tests using it
  are skipped, with the reason, where pgserver has no wheel.

Fixtures (session-scoped; async ones share the session event loop, see
``[tool.pytest.ini_options]`` in pyproject.toml):

``pg_server_url``
    Admin URL of the server. Create nothing in its database; use the fixtures below.
``create_database``
    Async factory: ``url = await create_database()`` makes a new, empty database;
    ``await create_database(migrated=True)`` also applies the packaged migrations. Use it
    when a test needs a database of its own (e.g. to test migrations themselves).
``database_url``
    A fresh, empty database for this run (no tables, not even ``schema_migrations``).
``migrated_url``
    Another fresh database with all packaged migrations applied: the one for repository
    and use-case tests. Shared by the whole run, so tests must not assume it is empty
    (use unique ids), or take their own from ``create_database``.
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import Protocol

import pytest

from billing.store.database import DATABASE_URL_ENV, connect, with_database
from billing.store.embedded import EmbeddedPostgres, EmbeddedPostgresUnavailable
from billing.store.migrate import migrate


class CreateDatabase(Protocol):
    def __call__(self, *, migrated: bool = False) -> Awaitable[str]: ...


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    url = os.environ.get(DATABASE_URL_ENV, "").strip()
    if url:
        yield url
        return
    root = Path(tempfile.mkdtemp(prefix="billing-test-pg-"))
    embedded = EmbeddedPostgres(root / "pgdata")
    try:
        embedded.start()
    except EmbeddedPostgresUnavailable as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(str(exc))
    try:
        yield embedded.url
    finally:
        embedded.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
async def create_database(pg_server_url: str) -> AsyncIterator[CreateDatabase]:
    prefix = f"billing_test_{secrets.token_hex(4)}"
    counter = itertools.count(1)
    created: list[str] = []

    async def create(*, migrated: bool = False) -> str:
        name = f"{prefix}_{next(counter)}"
        admin = await connect(pg_server_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        created.append(name)
        url = with_database(pg_server_url, name)
        if migrated:
            await migrate(url)
        return url

    yield create

    if created:
        admin = await connect(pg_server_url)
        try:
            for name in created:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(scope="session")
async def database_url(create_database: CreateDatabase) -> str:
    return await create_database()


@pytest.fixture(scope="session")
async def migrated_url(create_database: CreateDatabase) -> str:
    return await create_database(migrated=True)
