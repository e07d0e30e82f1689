"""What every servicer shares: its dependencies, and the two ways a call touches storage."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from google.protobuf.message import Message

from rating.usecases.billing_ports import BillingUnitOfWork
from rating.usecases.idempotency import RequestKey, run_once
from rating.usecases.ports import CatalogSource

M = TypeVar("M", bound=Message)


class MutatingRequest(Protocol):
    request_id: str

    def SerializeToString(self, *, deterministic: bool = ...) -> bytes: ...


@dataclass(frozen=True)
class Dependencies:
    unit_of_work: Callable[[], BillingUnitOfWork]
    read_only: Callable[[], BillingUnitOfWork]
    catalog: CatalogSource
    clock: Callable[[], datetime]


async def mutate(
    deps: Dependencies,
    method: str,
    request: Message,
    response_type: type[M],
    build: Callable[[BillingUnitOfWork], Awaitable[M]],
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


async def read(deps: Dependencies, query: Callable[[BillingUnitOfWork], Awaitable[M]]) -> M:
    async with deps.read_only() as uow:
        return await query(uow)
