"""Subscription rows: the relational columns SQL needs, and the domain state as a JSON document.

The row's ``state`` column holds the domain's subscription encoded by :mod:`billing.store.codec`;
the columns beside it (customer, status, next boundary, version, the queue's lease and failure
columns) are what queries filter and lock on. Every write bumps ``version``; :func:`update`
succeeds only on the version the writer read (optimistic concurrency), which is also how the
invoicer notices that the API changed a subscription while it was rating it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from billing.domain.errors import Aborted, NotFound
from billing.store import codec
from billing.store._types import Connection


@dataclass(frozen=True, slots=True)
class SubscriptionRecord:
    """One ``subscriptions`` row. ``state`` is the domain subscription; the rest is bookkeeping.

    ``next_boundary_at`` is the next instant the invoicer must close (in the customer's time:
    its test clock's when it has one), None when the subscription has nothing left to close.
    ``version`` is the version read; :func:`update` writes ``version + 1``.
    """

    id: str
    customer_id: str
    currency: str
    status: str
    state: Any
    next_boundary_at: datetime | None
    version: int = 1
    test_clock_id: str | None = None
    issuing_entity: str = "default"
    traceparent: str | None = None
    # Read-only here: owned by the invoicer's queue.
    finalize_due_at: datetime | None = None
    attempts: int = 0
    last_error: str | None = None
    parked_reason: str | None = None
    parked_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


# The domain type ``state`` decodes to; set once by :func:`register_state_type` (the domain's
# Subscription), so this module does not depend on how the domain spells it.
_state_type: Any = None


def register_state_type(kind: type[Any]) -> None:
    global _state_type
    _state_type = kind


def decode_state(text: str) -> Any:
    if _state_type is None:
        raise RuntimeError("no subscription state type registered")
    return codec.from_json(_state_type, text)


def from_row(row: Mapping[str, Any]) -> SubscriptionRecord:
    return SubscriptionRecord(
        id=row["id"],
        customer_id=row["customer_id"],
        currency=row["currency"],
        status=row["status"],
        state=decode_state(row["state"]),
        next_boundary_at=row["next_boundary_at"],
        version=row["version"],
        test_clock_id=row["test_clock_id"],
        issuing_entity=row["issuing_entity"],
        traceparent=row["traceparent"],
        finalize_due_at=row["finalize_due_at"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        parked_reason=row["parked_reason"],
        parked_at=row["parked_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


_COLUMNS = (
    "id, customer_id, currency, status, state, next_boundary_at, version, test_clock_id, "
    "issuing_entity, traceparent, finalize_due_at, attempts, last_error, parked_reason, parked_at, "
    "created_at, updated_at"
)


async def insert(connection: Connection, record: SubscriptionRecord) -> SubscriptionRecord:
    """Insert ``record``; the customer's test clock (if any) is copied onto the row."""
    row = await connection.fetchrow(
        f"""
        INSERT INTO subscriptions (id, customer_id, currency, status, state, next_boundary_at,
                                   test_clock_id, issuing_entity, traceparent)
        SELECT $1, c.id, $3, $4, $5::jsonb, $6, c.test_clock_id, $7, $8
        FROM customers c WHERE c.id = $2
        RETURNING {_COLUMNS}
        """,
        record.id,
        record.customer_id,
        record.currency,
        record.status,
        codec.to_json(record.state),
        record.next_boundary_at,
        record.issuing_entity,
        record.traceparent,
    )
    if row is None:
        raise NotFound(f"customer {record.customer_id!r} not found")
    return from_row(row)


async def get(
    connection: Connection, subscription_id: str, *, for_update: bool = False
) -> SubscriptionRecord:
    lock = " FOR UPDATE" if for_update else ""
    sql = f"SELECT {_COLUMNS} FROM subscriptions WHERE id = $1{lock}"
    row = await connection.fetchrow(sql, subscription_id)
    if row is None:
        raise NotFound(f"subscription {subscription_id!r} not found")
    return from_row(row)


async def update(connection: Connection, record: SubscriptionRecord) -> SubscriptionRecord:
    """Write ``record``'s status, state, next boundary and traceparent, if still at ``record.version``.

    Raises ``Aborted`` when another writer committed first: read again and retry.
    """
    row = await connection.fetchrow(
        f"""
        UPDATE subscriptions
        SET status = $3, state = $4::jsonb, next_boundary_at = $5, traceparent = $6,
            version = version + 1, updated_at = now()
        WHERE id = $1 AND version = $2
        RETURNING {_COLUMNS}
        """,
        record.id,
        record.version,
        record.status,
        codec.to_json(record.state),
        record.next_boundary_at,
        record.traceparent,
    )
    if row is None:
        raise Aborted(f"subscription {record.id!r} changed concurrently; retry")
    return from_row(row)


async def list_for_customer(
    connection: Connection, customer_id: str, *, after: str | None, limit: int
) -> list[SubscriptionRecord]:
    rows = await connection.fetch(
        f"SELECT {_COLUMNS} FROM subscriptions WHERE customer_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        customer_id,
        after or "",
        limit,
    )
    return [from_row(row) for row in rows]


async def add_pending_lines(
    connection: Connection, subscription_id: str, lines: Sequence[tuple[str, datetime, Any]]
) -> None:
    """Store proration lines ``(id, created_for, line)`` for the subscription's next invoice.

    Write them in the same transaction as the subscription update that created them: the
    version bump is what makes a close rated before them retry instead of missing them.
    """
    await connection.executemany(
        "INSERT INTO pending_proration_lines (id, subscription_id, created_for, line) "
        "VALUES ($1, $2, $3, $4::jsonb)",
        [(line_id, subscription_id, at, codec.to_json(line)) for line_id, at, line in lines],
    )


async def pending_lines(
    connection: Connection, subscription_id: str, kind: type[Any]
) -> list[tuple[str, Any]]:
    """The proration lines not yet invoiced, ``(id, line)`` in creation order."""
    rows = await connection.fetch(
        "SELECT id, line FROM pending_proration_lines WHERE subscription_id = $1 AND invoice_id IS NULL "
        "ORDER BY created_for, id",
        subscription_id,
    )
    return [(row["id"], codec.from_json(kind, row["line"])) for row in rows]


def with_state(record: SubscriptionRecord, state: Any, **changes: Any) -> SubscriptionRecord:
    return replace(record, state=state, **changes)
