"""Run a mutation at most once per ``request_id`` (DESIGN.md §7).

The answer is stored in the mutation's own transaction: either both commit or neither does, so
a retry after a crash either finds the answer or safely runs again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from billing.domain.errors import FailedPrecondition, InvalidArgument
from rating.usecases.ports import UnitOfWork

R = TypeVar("R")
U = TypeVar("U", bound=UnitOfWork)

MAX_REQUEST_ID_LENGTH = 128


@dataclass(frozen=True, slots=True)
class RequestKey:
    """Who is asking (``request_id``), for what (``method``), with which exact payload."""

    request_id: str
    method: str
    payload: bytes

    @property
    def fingerprint(self) -> bytes:
        return hashlib.sha256(self.method.encode() + b"\0" + self.payload).digest()


def check_request_id(request_id: str) -> None:
    if not request_id.strip():
        raise InvalidArgument.single("request_id", "is required for a mutating call")
    if len(request_id) > MAX_REQUEST_ID_LENGTH:
        raise InvalidArgument.single("request_id", f"at most {MAX_REQUEST_ID_LENGTH} characters")


async def run_once(
    unit_of_work: Callable[[], U],
    key: RequestKey,
    mutation: Callable[[U], Awaitable[R]],
    encode: Callable[[R], bytes],
    decode: Callable[[bytes], R],
) -> R:
    """Run ``mutation`` and commit, or return the stored answer of an earlier identical call."""
    check_request_id(key.request_id)
    async with unit_of_work() as uow:
        stored = await uow.idempotency.recall(key.request_id)
        if stored is not None:
            if stored.method != key.method or stored.fingerprint != key.fingerprint:
                raise FailedPrecondition(
                    f"request_id {key.request_id!r} was already used for a different request"
                )
            return decode(stored.response)
        result = await mutation(uow)
        await uow.idempotency.remember(key.request_id, key.method, key.fingerprint, encode(result))
        await uow.commit()
        return result
