"""Stored first answers of mutating requests (DESIGN.md §7 ``request_id``).

Scope: a request id is remembered for ``RETENTION`` (7 days) after its first use; a retry inside
that window gets the first answer back. The row is written in the mutation's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from billing.domain.errors import Aborted
from billing.store._types import Connection

RETENTION = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    method: str
    fingerprint: bytes
    response: bytes


class IdempotencyRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def recall(self, request_id: str) -> StoredResponse | None:
        """The stored answer for ``request_id``, waiting out a concurrent first attempt.

        The transaction-scoped advisory lock serialises two calls with the same id: the second
        waits until the first commits (and then finds its answer) or rolls back (and then runs).
        """
        await self._connection.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))", request_id)
        row = await self._connection.fetchrow(
            "SELECT method, fingerprint, response FROM idempotency_keys "
            "WHERE request_id = $1 AND created_at > now() - $2::interval",
            request_id,
            RETENTION,
        )
        if row is None:
            return None
        return StoredResponse(row["method"], bytes(row["fingerprint"]), bytes(row["response"]))

    async def remember(self, request_id: str, method: str, fingerprint: bytes, response: bytes) -> None:
        """Store the answer; only an id past its retention may be taken over.

        A fresh row under the same id means another transaction got there first without waiting
        on the lock in ``recall``; this one must not commit a second result.
        """
        stored = await self._connection.fetchval(
            "INSERT INTO idempotency_keys (request_id, method, fingerprint, response) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (request_id) DO UPDATE "
            "SET method = EXCLUDED.method, fingerprint = EXCLUDED.fingerprint, "
            "response = EXCLUDED.response, created_at = now() "
            "WHERE idempotency_keys.created_at <= now() - $5::interval "
            "RETURNING true",
            request_id,
            method,
            fingerprint,
            response,
            RETENTION,
        )
        if not stored:
            raise Aborted(f"another request with request_id {request_id!r} is in flight; retry")
