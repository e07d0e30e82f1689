"""One database transaction, with the repositories that work inside it (cosmicpython's UoW).

The transaction rolls back unless ``commit()`` is called, so a use case that raises half-way
leaves nothing behind. Connection loss becomes ``Unavailable`` so callers may retry.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import asyncpg

from billing.domain.errors import Unavailable
from billing.store._types import Connection
from billing.store.idempotency import IdempotencyRepository
from billing.store.ids import new_id
from billing.store.repository import EntityRepository

# Errors that mean "the database is not there right now", not "your request is wrong". Not
# asyncpg.InterfaceError: it is mostly a programming error (wrong argument count), a bug.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    # Raised when a backend's FATAL (pg_terminate_backend) lands between two protocol steps.
    asyncpg.InternalClientError,
)


@contextlib.asynccontextmanager
async def pooled_connection(pool: asyncpg.Pool[Any]) -> AsyncIterator[Connection]:
    """A connection of ``pool`` outside any transaction (each statement commits on its own);
    losing the database meanwhile is ``Unavailable``, which callers may retry."""
    try:
        async with pool.acquire() as connection:
            yield connection
    except CONNECTION_ERRORS as error:
        raise Unavailable("the database is unavailable; retry") from error


class PostgresUnitOfWork:
    entities: EntityRepository
    idempotency: IdempotencyRepository

    def __init__(self, pool: asyncpg.Pool[Any], *, read_only: bool = False) -> None:
        self._pool = pool
        self._read_only = read_only
        self._connection: Any = None
        self._transaction: Any = None

    async def __aenter__(self) -> PostgresUnitOfWork:
        try:
            self._connection = await self._pool.acquire()
            self._transaction = self._connection.transaction(readonly=self._read_only)
            await self._transaction.start()
        except CONNECTION_ERRORS as error:
            await self._release()
            raise Unavailable("the database is unavailable") from error
        self.entities = EntityRepository(self._connection)
        self.idempotency = IdempotencyRepository(self._connection)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._transaction is not None:
                await self._transaction.rollback()
        except CONNECTION_ERRORS:
            pass  # the connection is gone, and the transaction with it
        finally:
            await self._release()
        if isinstance(exc, CONNECTION_ERRORS):
            raise Unavailable("the database connection was lost") from exc

    async def commit(self) -> None:
        transaction, self._transaction = self._transaction, None
        try:
            await transaction.commit()
        except CONNECTION_ERRORS as error:
            raise Unavailable("the database connection was lost during commit") from error

    def new_id(self, prefix: str) -> str:
        return new_id(prefix)

    async def _release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await self._pool.release(connection)
