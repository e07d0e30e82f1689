"""Plain-SQL schema migrations: ``billing/store/migrations/NNNN_name.sql``, in order.

Rules, and why:

- A migration is a file ``<version>_<name>.sql`` (``0001_init.sql``), shipped as package
  data and read with :mod:`importlib.resources`, so an installed wheel migrates without
  a source checkout. Files are applied in version order; any other ``*.sql`` name in the
  directory is an error rather than silently skipped.
- Each migration runs in its own transaction together with its ``schema_migrations``
  row: a failure leaves neither half behind. (So ``CREATE INDEX CONCURRENTLY`` and other
  statements that refuse a transaction block cannot be used in a migration.)
- Applied migrations are immutable. Their SHA-256 checksum is recorded; if a file
  changed after it was applied, every database migrated earlier has a schema the file no
  longer describes, so :func:`migrate` refuses to run. Write a new migration instead.
  Line endings are normalised first, so a Windows checkout is not "changed".
- A pending migration older than the newest applied one (two branches merged in the
  wrong order) is refused too: it would run on a schema its author never saw.
  Applied versions unknown to this build and newer than all of its files are ignored:
  they come from a newer release, and an older release must still be able to run.
- Concurrent migrators (several pods starting at once) are serialised by a session-level
  ``pg_advisory_lock`` held for the whole run; the second one waits, then finds nothing
  to do. A session lock needs a real session: do not migrate through PgBouncer in
  transaction pooling mode.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from billing.store.database import connect

__all__ = [
    "ChecksumMismatchError",
    "Migration",
    "MigrationError",
    "load_migrations",
    "migrate",
]

_log = logging.getLogger(__name__)

_FILENAME = re.compile(r"^(?P<version>\d{4,})_(?P<name>[a-z0-9_]+)\.sql$")
# Fixed key for pg_advisory_lock: first 8 bytes of sha256("billing.store.migrate").
ADVISORY_LOCK_KEY = int.from_bytes(hashlib.sha256(b"billing.store.migrate").digest()[:8], "big", signed=True)

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


# A string: asyncpg's classes are generic only in its stubs, not at runtime.
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"


class MigrationError(RuntimeError):
    """Migrations could not be applied. A failing one was rolled back; earlier ones stay."""


class ChecksumMismatchError(MigrationError):
    """An already-applied migration file was edited."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file: ``<version>_<name>.sql`` and its SQL text."""

    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        normalised = self.sql.replace("\r\n", "\n").replace("\r", "\n")
        return hashlib.sha256(normalised.encode()).hexdigest()

    @property
    def filename(self) -> str:
        return f"{self.version}_{self.name}.sql"


def load_migrations(directory: Traversable | None = None) -> list[Migration]:
    """Read ``*.sql`` migrations from ``directory`` (default: the packaged ones), sorted."""
    source = directory if directory is not None else files("billing.store") / "migrations"
    found: dict[int, Migration] = {}
    for entry in source.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILENAME.match(entry.name)
        if match is None:
            raise MigrationError(
                f"migration file {entry.name!r} is not named <version>_<name>.sql "
                "(digits, underscore, lowercase letters/digits/underscores)"
            )
        migration = Migration(match["version"], match["name"], entry.read_text("utf-8"))
        number = int(migration.version)
        if number in found:
            raise MigrationError(
                f"two migrations share version {number}: {found[number].filename} and {migration.filename}"
            )
        found[number] = migration
    return [found[n] for n in sorted(found)]


async def migrate(target: Connection | str, *, migrations: Sequence[Migration] | None = None) -> list[str]:
    """Apply pending migrations to ``target`` (a connection or a URL).

    Returns the versions applied by this call, in order (``[]`` when up to date).
    Raises :class:`ChecksumMismatchError` or :class:`MigrationError` before applying
    anything when the database and the files disagree (see the module docstring).
    """
    wanted = list(load_migrations() if migrations is None else migrations)
    if isinstance(target, str):
        # No command timeout: building an index on a big table may take minutes.
        conn = await connect(target, application_name="billing-migrate", command_timeout=None)
        try:
            return await _migrate(conn, wanted)
        finally:
            await conn.close()
    return await _migrate(target, wanted)


async def _migrate(conn: Connection, wanted: list[Migration]) -> list[str]:
    await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
    try:
        await conn.execute(_CREATE_TABLE)
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
        applied: dict[str, str] = {r["version"]: r["checksum"] for r in rows}
        pending = _check(wanted, applied)
        done: list[str] = []
        for migration in pending:
            _log.info("applying migration %s", migration.filename)
            try:
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
            except asyncpg.PostgresError as exc:
                raise MigrationError(
                    f"migration {migration.filename} failed and was rolled back "
                    f"(applied before it in this run: {done or 'none'}): "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            done.append(migration.version)
        return done
    finally:
        # A broken connection has released the lock with its session already.
        with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)


def _check(wanted: list[Migration], applied: dict[str, str]) -> list[Migration]:
    """Validate applied against files; return the pending migrations in order."""
    changed = [m.filename for m in wanted if applied.get(m.version, m.checksum) != m.checksum]
    if changed:
        raise ChecksumMismatchError(
            f"applied migrations were edited after being applied: {', '.join(changed)}. "
            "Applied migrations are immutable: restore the files and add a new migration."
        )
    known = {m.version for m in wanted}
    newest_file = max((int(m.version) for m in wanted), default=-1)
    missing = sorted(v for v in applied if v not in known and int(v) < newest_file)
    if missing:
        raise MigrationError(f"applied migrations {missing} have no file in this build (renamed or deleted?)")
    pending = [m for m in wanted if m.version not in applied]
    newest_applied = max((int(v) for v in applied), default=-1)
    late = [m.filename for m in pending if int(m.version) < newest_applied]
    if late:
        raise MigrationError(
            f"pending migrations {late} are older than applied migration "
            f"{newest_applied:04d}: renumber them after it"
        )
    return pending
