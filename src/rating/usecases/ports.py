"""What the use cases need from storage, as Protocols, so they run against fakes in unit tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

from billing.domain.catalog import Catalog

T = TypeVar("T")


class Entities(Protocol):
    """Catalog and customer entities; ``where`` maps a unique or filter column to its value."""

    async def add(self, entity: T) -> T: ...

    async def update(self, entity: T) -> T: ...

    async def get(self, kind: type[T], entity_id: str, *, for_update: bool = False) -> T: ...

    async def list(
        self,
        kind: type[T],
        *,
        after: str | None,
        limit: int,
        show_archived: bool = False,
        where: Mapping[str, object] | None = None,
    ) -> list[T]: ...

    async def clear_lookup_key(self, kind: type[Any], lookup_key: str) -> None: ...


class StoredAnswer(Protocol):
    @property
    def method(self) -> str: ...

    @property
    def fingerprint(self) -> bytes: ...

    @property
    def response(self) -> bytes: ...


class Idempotency(Protocol):
    async def recall(self, request_id: str) -> StoredAnswer | None: ...

    async def remember(self, request_id: str, method: str, fingerprint: bytes, response: bytes) -> None: ...


class UnitOfWork(Protocol):
    """One transaction: rolled back on exit unless ``commit()`` was called."""

    @property
    def entities(self) -> Entities: ...

    @property
    def idempotency(self) -> Idempotency: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def commit(self) -> None: ...

    def new_id(self, prefix: str) -> str: ...


UnitOfWorkFactory = Callable[[], UnitOfWork]


class CatalogSource(Protocol):
    """The in-memory catalog snapshot the rating service quotes from."""

    def current(self) -> Catalog: ...
