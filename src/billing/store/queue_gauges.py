"""The invoicer's two gauges, read from the queue table in one cheap statement.

``due`` is what a claim would take now: the predicates of ``period_queue``'s claim (due in the
customer's time, not parked, no live lease, not backing off), counted over the same two partial
indexes (``subscriptions_due``, ``subscriptions_clock_due``). ``parked`` counts the rows of the
``subscriptions_parked`` partial index. Both are global: every worker reads the same numbers. A
worker samples them every few seconds (``INVOICER_GAUGE_SECONDS``), never per close.
"""

from __future__ import annotations

from dataclasses import dataclass

from billing.store._types import Connection

# Keep in step with period_queue._CLAIM: a row counted here is a row a claim would take.
_GAUGES = """
SELECT
    (SELECT count(*) FROM subscriptions
     WHERE test_clock_id IS NULL AND parked_reason IS NULL AND due_at <= now()
       AND (lease_expires_at IS NULL OR lease_expires_at <= now())
       AND (next_attempt_at IS NULL OR next_attempt_at <= now()))
  + (SELECT count(*) FROM subscriptions s JOIN test_clocks c ON c.id = s.test_clock_id
     WHERE s.test_clock_id IS NOT NULL AND s.parked_reason IS NULL AND s.due_at <= c.frozen_time
       AND (s.lease_expires_at IS NULL OR s.lease_expires_at <= now())
       AND (s.next_attempt_at IS NULL OR s.next_attempt_at <= now())) AS due,
    (SELECT count(*) FROM subscriptions WHERE parked_reason IS NOT NULL) AS parked
"""


@dataclass(frozen=True, slots=True)
class QueueGauges:
    due: int
    """Subscriptions a claim would take now (waiting for a worker)."""
    parked: int
    """Subscriptions parked with a reason, waiting for a person."""


async def read(connection: Connection) -> QueueGauges:
    row = await connection.fetchrow(_GAUGES)
    assert row is not None  # an aggregate always returns one row
    return QueueGauges(due=int(row["due"]), parked=int(row["parked"]))
