"""In-memory fakes of the storage ports, for use-case tests without a database (cosmicpython)."""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

from billing.domain.errors import AlreadyExists, NotFound

T = TypeVar("T")


@dataclasses.dataclass
class _Answer:
    method: str
    fingerprint: bytes
    response: bytes


class FakeState:
    """What the fake 'database' holds; units of work copy it and write it back on commit."""

    def __init__(self) -> None:
        self.rows: dict[type[Any], dict[str, Any]] = {}
        self.answers: dict[str, _Answer] = {}
        self.commits = 0


class FakeEntities:
    def __init__(self, rows: dict[type[Any], dict[str, Any]]) -> None:
        self.rows = rows

    async def add(self, entity: T) -> T:
        table = self.rows.setdefault(type(entity), {})
        key = getattr(entity, "lookup_key", None)
        if key and any(getattr(e, "lookup_key", None) == key for e in table.values()):
            raise AlreadyExists("lookup key taken")
        table[entity.id] = entity  # type: ignore[attr-defined]
        return entity

    async def update(self, entity: T) -> T:
        self.rows.setdefault(type(entity), {})[entity.id] = entity  # type: ignore[attr-defined]
        return entity

    async def get(self, kind: type[T], entity_id: str, *, for_update: bool = False) -> T:
        try:
            found: T = self.rows.get(kind, {})[entity_id]
        except KeyError:
            raise NotFound(f"{kind.__name__} {entity_id!r} not found") from None
        return found

    async def list(
        self,
        kind: type[T],
        *,
        after: str | None,
        limit: int,
        show_archived: bool = False,
        where: Mapping[str, object] | None = None,
    ) -> list[T]:
        items = sorted(self.rows.get(kind, {}).values(), key=lambda e: e.id)
        items = [
            e
            for e in items
            if (after is None or e.id > after) and (show_archived or getattr(e, "active", True))
        ]
        items = [e for e in items if all(getattr(e, k) == v for k, v in (where or {}).items())]
        return items[:limit]

    async def clear_lookup_key(self, kind: type[Any], lookup_key: str) -> None:
        table = self.rows.get(kind, {})
        for entity_id, entity in list(table.items()):
            if entity.lookup_key == lookup_key:
                table[entity_id] = dataclasses.replace(entity, lookup_key=None)


class FakeIdempotency:
    def __init__(self, answers: dict[str, _Answer]) -> None:
        self.answers = answers

    async def recall(self, request_id: str) -> _Answer | None:
        return self.answers.get(request_id)

    async def remember(self, request_id: str, method: str, fingerprint: bytes, response: bytes) -> None:
        self.answers[request_id] = _Answer(method, fingerprint, response)


class FakeUnitOfWork:
    """Works on a copy of the state; only ``commit()`` makes the changes visible."""

    _ids = itertools.count(1)

    def __init__(self, state: FakeState) -> None:
        self.state = state

    @property
    def entities(self) -> FakeEntities:
        return self._entities

    @property
    def idempotency(self) -> FakeIdempotency:
        return self._idempotency

    async def __aenter__(self) -> Self:
        self._rows = copy.deepcopy(self.state.rows)
        self._answers = dict(self.state.answers)
        self._entities = FakeEntities(self._rows)
        self._idempotency = FakeIdempotency(self._answers)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    async def commit(self) -> None:
        self.state.rows = self._rows
        self.state.answers = self._answers
        self.state.commits += 1

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):06d}"
