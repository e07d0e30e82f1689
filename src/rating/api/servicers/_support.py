"""What every servicer shares: its dependencies, and the two ways a call touches storage."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from google.protobuf.message import Message

from rating.usecases.idempotency import RequestKey, run_once
from rating.usecases.ports import CatalogSource, UnitOfWork, UnitOfWorkFactory

M = TypeVar("M", bound=Message)


class MutatingRequest(Protocol):
    request_id: str

    def SerializeToString(self, *, deterministic: bool = ...) -> bytes: ...


@dataclass(frozen=True)
class Dependencies:
    unit_of_work: UnitOfWorkFactory
    read_only: UnitOfWorkFactory
    catalog: CatalogSource
    clock: Callable[[], datetime]


async def mutate(
    deps: Dependencies,
    method: str,
    request: Message,
    response_type: type[M],
    build: Callable[[UnitOfWork], Awaitable[M]],
) -> M:
    """Run ``build`` once per request id; a retry gets the stored response back."""
    payload = type(request)()
    payload.CopyFrom(request)
    payload.ClearField("request_id")
    key = RequestKey(
        request_id=request.request_id,  # type: ignore[attr-defined]
        method=method,
        payload=payload.SerializeToString(deterministic=True),
    )
    return await run_once(
        deps.unit_of_work, key, build, lambda m: m.SerializeToString(), response_type.FromString
    )


async def read(deps: Dependencies, query: Callable[[UnitOfWork], Awaitable[M]]) -> M:
    async with deps.read_only() as uow:
        return await query(uow)
