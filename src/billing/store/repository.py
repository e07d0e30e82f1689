"""Reads and writes of catalog and customer entities, one generic implementation for all.

Errors leave this module as domain errors: a unique violation becomes ``AlreadyExists`` with the
constraint's own message, a missing row ``NotFound``. Nothing above the store sees asyncpg.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import asyncpg

from billing.domain.errors import AlreadyExists, FailedPrecondition, NotFound
from billing.store._types import Connection
from billing.store.tables import TABLES, Table

T = TypeVar("T")


class EntityRepository:
    """Entities in one transaction's connection."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def add(self, entity: T) -> T:
        table = _table(type(entity))
        columns = ", ".join(table.columns)
        params = ", ".join(f"${i}" for i in range(1, len(table.columns) + 1))
        sql = f"INSERT INTO {table.name} ({columns}) VALUES ({params}) RETURNING *"
        row = await self._write(table, sql, *table.to_row(entity))
        return table.from_row(row)

    async def update(self, entity: T) -> T:
        table = _table(type(entity))
        assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(table.columns[1:], start=2))
        touch = ", updated_at = now()" if table.name == "customers" else ""
        sql = f"UPDATE {table.name} SET {assignments}{touch} WHERE id = $1 RETURNING *"
        row = await self._write(table, sql, *table.to_row(entity))
        return table.from_row(row)

    async def get(self, kind: type[T], entity_id: str, *, for_update: bool = False) -> T:
        table = _table(kind)
        lock = " FOR UPDATE" if for_update else ""
        row = await self._connection.fetchrow(f"SELECT * FROM {table.name} WHERE id = $1{lock}", entity_id)
        if row is None:
            raise NotFound(f"{table.noun} {entity_id!r} not found")
        return table.from_row(row)

    async def list(
        self,
        kind: type[T],
        *,
        after: str | None,
        limit: int,
        show_archived: bool = False,
        where: Mapping[str, object] | None = None,
    ) -> list[T]:
        """Up to ``limit`` entities with ids above ``after``, in id (creation) order."""
        table = _table(kind)
        clauses: list[str] = []
        params: list[object] = []
        for column, value in (where or {}).items():
            if column not in table.columns:
                raise ValueError(f"{table.name} has no column {column!r}")
            params.append(value)
            clauses.append(f"{column} = ${len(params)}")
        if after:
            params.append(after)
            clauses.append(f"id > ${len(params)}")
        if not show_archived and "archived" in table.columns:
            clauses.append("NOT archived")
        condition = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        params.append(limit)
        sql = f"SELECT * FROM {table.name} {condition} ORDER BY id LIMIT ${len(params)}"
        rows = await self._connection.fetch(sql, *params)
        return [table.from_row(row) for row in rows]

    async def clear_lookup_key(self, kind: type[Any], lookup_key: str) -> None:
        """Take ``lookup_key`` away from whichever entity holds it (a lookup-key transfer)."""
        table = _table(kind)
        await self._connection.execute(
            f"UPDATE {table.name} SET lookup_key = NULL WHERE lookup_key = $1", lookup_key
        )

    async def _write(self, table: Table[Any], sql: str, *args: object) -> Mapping[str, Any]:
        try:
            row = await self._connection.fetchrow(sql, *args)
        except asyncpg.UniqueViolationError as error:
            constraint = error.constraint_name or ""
            message = table.unique.get(constraint, f"this {table.noun} already exists")
            raise AlreadyExists(message) from None
        except asyncpg.ForeignKeyViolationError as error:
            raise NotFound(f"{table.noun} refers to a missing resource ({error.constraint_name})") from None
        except asyncpg.CheckViolationError as error:
            raise FailedPrecondition(f"{table.noun} rejected by the database: {error.message}") from None
        if row is None:
            raise NotFound(f"{table.noun} not found")
        return dict(row)


def _table(kind: type[T]) -> Table[T]:
    return TABLES[kind]
