"""The invoicer's queue: the ``subscriptions`` rows whose next boundary or draft finalization is due.

DESIGN.md §6 and its PostgreSQL traps, as this module applies them:

- A claim is one short statement: ``FOR UPDATE SKIP LOCKED`` picks due rows nobody holds, and
  the same statement gives each a fresh lease token and an expiry. No transaction stays open
  while a worker rates; the lease is what it holds.
- Fencing: whatever a worker writes for a subscription is written by a statement that first
  locks the row and checks, in the same transaction, that the lease token is still its own and
  unexpired (``clock_timestamp()``, not the transaction's start). Once that row lock is held
  nobody can claim the row until the transaction ends, so the check stays true to the commit.
- "Due" is in the customer's time: a test clock's frozen time for customers on a clock, the
  real ``now()`` for everyone else. Retry times and lease expiries are always real time.
- Failures: consecutive failed attempts back off exponentially, then park the subscription with
  a reason. A worker that died cannot count its attempt: its lease expires with the token still
  set, and the next claim records it instead (back-off, or parking at ``max_attempts``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from billing.store._types import Connection
from billing.store.subscriptions import SubscriptionRecord, from_row

_ROW = (
    "s.id, s.customer_id, s.currency, s.status, s.state, s.next_boundary_at, s.version, s.test_clock_id, "
    "s.issuing_entity, s.traceparent, s.finalize_due_at, s.attempts, s.last_error, s.parked_reason, "
    "s.parked_at, s.created_at, s.updated_at"
)

# Two access paths, each an index scan in due order: real-time subscriptions, and those on a test
# clock (due against their clock's time). Both lock with SKIP LOCKED, so concurrent claimers
# never wait on each other and never get the same row.
#
# A row still carrying a lease token when it is claimed had its lease expire without an outcome
# (every outcome clears the token): its worker died, or stalled past the lease. The dead worker
# cannot count that failed attempt, so the claim does, as fail() would have: it is not leased but
# backs off ($5 * 2^(n-1), at most $6) or, at the max_attempts-th ($4), parks. A subscription
# that kills its workers is then not handed out for ever, and a healthy one caught in a burst of
# crashes waits a little rather than being handed straight back into the burst.
_CLAIM = f"""
WITH real_due AS (
    SELECT id FROM subscriptions
    WHERE test_clock_id IS NULL AND parked_reason IS NULL AND due_at <= now()
      AND (lease_expires_at IS NULL OR lease_expires_at <= now())
      AND (next_attempt_at IS NULL OR next_attempt_at <= now())
    ORDER BY due_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), clock_due AS (
    SELECT s.id FROM subscriptions s JOIN test_clocks c ON c.id = s.test_clock_id
    WHERE s.test_clock_id IS NOT NULL AND s.parked_reason IS NULL AND s.due_at <= c.frozen_time
      AND (s.lease_expires_at IS NULL OR s.lease_expires_at <= now())
      AND (s.next_attempt_at IS NULL OR s.next_attempt_at <= now())
    ORDER BY s.due_at
    LIMIT $1
    FOR UPDATE OF s SKIP LOCKED
)
UPDATE subscriptions s
SET attempts = s.attempts + (s.lease_token IS NOT NULL)::int,
    last_error = CASE WHEN s.lease_token IS NULL THEN s.last_error
        ELSE 'the lease of ' || coalesce(s.lease_owner, '?') || ' expired without an outcome' END,
    next_attempt_at = CASE WHEN s.lease_token IS NULL THEN s.next_attempt_at
        ELSE clock_timestamp()
             + least($6::bigint, $5::bigint << least(s.attempts, 30)) * interval '1 microsecond' END,
    parked_reason = CASE WHEN s.lease_token IS NOT NULL AND s.attempts + 1 >= $4
        THEN 'worker died while working it: ' || (s.attempts + 1)
             || ' attempts without an outcome, the last by ' || coalesce(s.lease_owner, '?') END,
    parked_at = CASE WHEN s.lease_token IS NOT NULL AND s.attempts + 1 >= $4 THEN clock_timestamp() END,
    lease_token = CASE WHEN s.lease_token IS NULL THEN gen_random_uuid() END,
    lease_owner = CASE WHEN s.lease_token IS NULL THEN $2 END,
    lease_expires_at = CASE WHEN s.lease_token IS NULL
        THEN clock_timestamp() + $3 * interval '1 microsecond' END
FROM (SELECT id FROM real_due UNION ALL SELECT id FROM clock_due) picked
WHERE s.id = picked.id
RETURNING {_ROW}, s.lease_token, s.lease_expires_at,
    coalesce((SELECT c.frozen_time FROM test_clocks c WHERE c.id = s.test_clock_id), now()) AS customer_now
"""


@dataclass(frozen=True, slots=True)
class Lease:
    subscription_id: str
    token: uuid.UUID
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Claimed:
    """A subscription this worker holds the lease of, as it was when claimed.

    ``customer_now`` is "now" for its customer at the claim: the test clock's frozen time, or
    the database's real time. ``state_json`` is the row's ``state`` as read, the text
    ``record.state`` was decoded from: a close stores it again (the draft's rating inputs)
    without encoding the subscription a second time.
    """

    lease: Lease
    record: SubscriptionRecord
    customer_now: datetime
    state_json: str = ""

    @property
    def subscription_id(self) -> str:
        return self.record.id

    @property
    def next_boundary_at(self) -> datetime | None:
        return self.record.next_boundary_at

    @property
    def finalize_due_at(self) -> datetime | None:
        return self.record.finalize_due_at

    @property
    def traceparent(self) -> str | None:
        return self.record.traceparent


class LeaseLost(Exception):
    """The lease expired or was taken over: this worker must not write for the subscription."""


class StaleState(Exception):
    """The subscription changed (another writer bumped its version) after it was read."""


def _micros(duration: timedelta) -> int:
    return duration // timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Abandoned:
    """A due row whose lease expired without an outcome: its worker died or stalled. The claim
    recorded the failed attempt (``last_error``) and, after too many, parked it."""

    subscription_id: str
    last_error: str
    parked_reason: str | None


async def claim(
    connection: Connection, *, limit: int, owner: str, lease: timedelta, policy: RetryPolicy | None = None
) -> tuple[list[Claimed], list[Abandoned]]:
    """Lease up to ``limit`` due subscriptions (and as many on test clocks) to ``owner``.

    A due row whose previous lease expired without an outcome is not leased: its failed attempt
    is recorded as ``fail`` records one, back-off and parking by ``policy`` (see ``_CLAIM``).
    Returns the leases and those rows."""
    policy = policy or RetryPolicy()
    rows = await connection.fetch(
        _CLAIM, limit, owner, _micros(lease), policy.max_attempts, _micros(policy.base), _micros(policy.cap)
    )
    claims: list[Claimed] = []
    abandoned: list[Abandoned] = []
    for row in rows:
        if row["lease_token"] is None:
            abandoned.append(Abandoned(row["id"], row["last_error"], row["parked_reason"]))
            continue
        claims.append(
            Claimed(
                lease=Lease(row["id"], row["lease_token"], row["lease_expires_at"]),
                record=from_row(row),
                customer_now=row["customer_now"],
                state_json=row["state"],
            )
        )
    return claims, abandoned


async def renew(connection: Connection, leases: Sequence[Lease], lease: timedelta) -> set[str]:
    """Extend the leases still held; the ids of those that were (the others are lost)."""
    if not leases:
        return set()
    rows = await connection.fetch(
        """
        UPDATE subscriptions s SET lease_expires_at = clock_timestamp() + $3 * interval '1 microsecond'
        FROM unnest($1::text[], $2::uuid[]) AS held(id, token)
        WHERE s.id = held.id AND s.lease_token = held.token AND s.lease_expires_at > clock_timestamp()
        RETURNING s.id
        """,
        [held.subscription_id for held in leases],
        [held.token for held in leases],
        _micros(lease),
    )
    return {row["id"] for row in rows}


async def fence(connection: Connection, lease: Lease, *, version: int | None = None) -> None:
    """Lock the subscription row if ``lease`` is still held (and, if given, ``version`` current).

    Call it first in the transaction that writes for the subscription. Raises ``LeaseLost`` or
    ``StaleState``; either way the caller must roll back.
    """
    row = await connection.fetchrow(
        """
        SELECT version, lease_token = $2 AND lease_expires_at > clock_timestamp() AS held
        FROM subscriptions WHERE id = $1 FOR UPDATE
        """,
        lease.subscription_id,
        lease.token,
    )
    if row is None or not row["held"]:
        raise LeaseLost(f"lease on subscription {lease.subscription_id} is no longer held")
    if version is not None and row["version"] != version:
        raise StaleState(f"subscription {lease.subscription_id} changed since it was read")


async def release(connection: Connection, lease: Lease) -> bool:
    """Give the lease back (the work is done or was not needed). False if it was already lost."""
    done = await connection.fetchval(
        """
        UPDATE subscriptions SET lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL
        WHERE id = $1 AND lease_token = $2 RETURNING true
        """,
        lease.subscription_id,
        lease.token,
    )
    return bool(done)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff: the n-th consecutive failure waits ``base * 2**(n-1)``, at most
    ``cap``; the ``max_attempts``-th parks the subscription."""

    base: timedelta = timedelta(seconds=5)
    cap: timedelta = timedelta(hours=1)
    max_attempts: int = 8


async def fail(connection: Connection, lease: Lease, error: str, policy: RetryPolicy) -> str | None:
    """Record a failed attempt and release the lease: retry later, or park after the last attempt.

    Returns the parked reason when this failure parked the subscription, else None. Does nothing
    if the lease was lost (the new holder owns the row's fate).
    """
    row = await connection.fetchrow(
        """
        UPDATE subscriptions
        SET attempts = attempts + 1,
            last_error = $3,
            next_attempt_at = clock_timestamp()
                + least($5::bigint, $4::bigint << least(attempts, 30)) * interval '1 microsecond',
            parked_reason = CASE WHEN attempts + 1 >= $6
                THEN 'failed ' || (attempts + 1) || ' times; last error: ' || $3 END,
            parked_at = CASE WHEN attempts + 1 >= $6 THEN clock_timestamp() END,
            lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL
        WHERE id = $1 AND lease_token = $2
        RETURNING parked_reason
        """,
        lease.subscription_id,
        lease.token,
        error[:2000],
        _micros(policy.base),
        _micros(policy.cap),
        policy.max_attempts,
    )
    return None if row is None else row["parked_reason"]


async def park(connection: Connection, lease: Lease, reason: str) -> bool:
    """Park the subscription for a person to look at (an inconsistency: never guess an invoice)."""
    done = await connection.fetchval(
        """
        UPDATE subscriptions
        SET parked_reason = $3, parked_at = clock_timestamp(), last_error = $3,
            lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL
        WHERE id = $1 AND lease_token = $2 RETURNING true
        """,
        lease.subscription_id,
        lease.token,
        reason[:2000],
    )
    return bool(done)


async def unpark(connection: Connection, subscription_id: str) -> bool:
    """Let the invoicer try a parked subscription again (after a person fixed the cause)."""
    done = await connection.fetchval(
        """
        UPDATE subscriptions
        SET parked_reason = NULL, parked_at = NULL, attempts = 0, next_attempt_at = NULL
        WHERE id = $1 AND parked_reason IS NOT NULL RETURNING true
        """,
        subscription_id,
    )
    return bool(done)


async def release_all(connection: Connection, owner: str) -> int:
    """Give back every lease ``owner`` holds (graceful shutdown), so others need not wait them out."""
    result: str = await connection.execute(
        "UPDATE subscriptions SET lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL "
        "WHERE lease_owner = $1",
        owner,
    )
    return int(result.split()[-1])
