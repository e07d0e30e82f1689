"""Where the database is, and how we connect to it.

``DATABASE_URL`` set: use that server. Unset: start (or join) the embedded PostgreSQL in
``./var/pgdata`` (see :mod:`billing.store.embedded`). Every connection gets the same
session settings, whether it comes from :func:`create_pool` or :func:`connect`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from billing.store.connection import StoreConnection
from billing.store.embedded import EmbeddedPostgres

__all__ = [
    "DATABASE_URL_ENV",
    "connect",
    "create_pool",
    "resolve_database_url",
    "server_settings",
    "with_database",
]

DATABASE_URL_ENV = "DATABASE_URL"
DEFAULT_APPLICATION_NAME = "billing"
# Generous for a batch insert; a hung query must still fail instead of hanging a worker.
DEFAULT_COMMAND_TIMEOUT_S = 60.0
# Our query set is small and fixed: cache all of it. Use 0 behind PgBouncer in
# transaction pooling mode, where prepared statements do not survive a transaction.
DEFAULT_STATEMENT_CACHE_SIZE = 512


def resolve_database_url(
    env: Mapping[str, str] | None = None, *, data_dir: Path | str | None = None
) -> tuple[str, EmbeddedPostgres | None]:
    """Return ``(url, embedded)``: ``DATABASE_URL`` if set, else a started embedded server.

    The caller owns ``embedded`` and must ``stop()`` it (or use it as a context manager)
    when done; it is ``None`` when a real server is used.
    """
    url = (os.environ if env is None else env).get(DATABASE_URL_ENV, "").strip()
    if url:
        return url, None
    embedded = EmbeddedPostgres(data_dir).start()
    return embedded.url, embedded


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database (query string kept).

    Works for TCP URLs and for the embedded ``postgresql://postgres:@/postgres?host=...``.
    """
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


def server_settings(application_name: str = DEFAULT_APPLICATION_NAME) -> dict[str, str]:
    """Session settings for every connection.

    ``jit=off``: our queries are short OLTP statements; JIT compilation of a query the
    planner merely guesses to be expensive costs tens of milliseconds for nothing.
    ``TimeZone=UTC``: instants are UTC ``timestamptz``; server-side casts and
    ``date_trunc`` must not depend on the server's configured zone.
    """
    return {"application_name": application_name, "jit": "off", "TimeZone": "UTC"}


async def create_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    application_name: str = DEFAULT_APPLICATION_NAME,
    command_timeout: float | None = DEFAULT_COMMAND_TIMEOUT_S,
    statement_cache_size: int = DEFAULT_STATEMENT_CACHE_SIZE,
    extra_settings: Mapping[str, str] | None = None,
    reset_sessions: bool = True,
) -> asyncpg.Pool[asyncpg.Record]:
    """An opened asyncpg pool with the project's connection settings (plus ``extra_settings``);
    its queries are traced when the span they run under is sampled (:mod:`billing.store.connection`).

    ``reset_sessions=False`` skips the reset statement asyncpg runs on every release (advisory
    locks, cursors, LISTEN, session settings: one more round trip per acquire), for a pool whose
    users change none of these. An open transaction is still rolled back on release.
    """
    return await asyncpg.create_pool(
        url,
        connection_class=StoreConnection,
        min_size=min_size,
        max_size=max_size,
        command_timeout=command_timeout,
        statement_cache_size=statement_cache_size,
        max_inactive_connection_lifetime=300.0,
        server_settings={**server_settings(application_name), **(extra_settings or {})},
        reset=None if reset_sessions else _keep_session,
    )


async def _keep_session(connection: asyncpg.Connection[Any]) -> None:
    """A pool's reset that runs no statement (asyncpg has already rolled back a transaction left
    open and dropped the listeners' callbacks)."""


async def connect(
    url: str,
    *,
    application_name: str = DEFAULT_APPLICATION_NAME,
    command_timeout: float | None = DEFAULT_COMMAND_TIMEOUT_S,
) -> asyncpg.Connection[asyncpg.Record]:
    """One connection with the same settings as the pool (migrations, admin tasks)."""
    return await asyncpg.connect(
        url,
        command_timeout=command_timeout,
        statement_cache_size=DEFAULT_STATEMENT_CACHE_SIZE,
        server_settings=server_settings(application_name),
    )
