"""Usage events in PostgreSQL: batched idempotent insert, cancellation, and aggregation.

Ingest is one statement per batch, one round trip: the arrays go in as they came off the wire
and PostgreSQL turns text into jsonb and numeric and epoch seconds into timestamptz, so no
Python object is built per event. The dedupe table's primary key is what makes a replay a
no-op; the statement only reports which keys were new.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from billing.domain.catalog import Aggregation, Meter
from billing.domain.errors import Unavailable
from billing.domain.usage import Stored, UsageRows, UsageTotal
from billing.store._types import Connection
from billing.store.unit_of_work import CONNECTION_ERRORS

# NOTE: the fingerprint hashes the resolved customer id (not the reference used), the meter, the
# instant in microseconds, the properties as canonical jsonb text and the value without
# trailing zeros, so "1.50" and "1.5", or a customer named by id and by CRM id, are one payload.
# A key sent twice in one batch is inserted once (its first copy, in ``firsts``); every copy
# reports its own fingerprint and the first copy's, so equivalence is judged on the same terms
# within a batch as across batches.
_INSERT = """
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::int[],
                         $7::text[], $8::text[])
        WITH ORDINALITY AS t(key, customer_ref, crm_ref, meter_id, seconds, nanos, props, value, ord)
), resolved AS (
    SELECT i.ord, i.key, coalesce(by_id.id, by_crm.id) AS customer_id, i.meter_id,
           i.seconds * 1000000 + i.nanos / 1000 AS micros,
           timestamptz 'epoch' + (i.seconds * 1000000 + i.nanos / 1000) * interval '1 microsecond'
               AS occurred_at,
           i.props::jsonb AS properties,
           trim_scale(nullif(i.value, '')::numeric) AS value
    FROM input i
    LEFT JOIN customers by_id ON by_id.id = i.customer_ref
    LEFT JOIN customers by_crm ON by_crm.crm_account_id = i.crm_ref
), known AS (
    SELECT r.*, md5(concat_ws(chr(31), r.customer_id, r.meter_id, r.micros, r.properties::text,
                              r.value::text))::uuid AS fingerprint
    FROM resolved r WHERE r.customer_id IS NOT NULL
), firsts AS (
    SELECT DISTINCT ON (key) * FROM known ORDER BY key, ord
), fresh AS (
    INSERT INTO usage_keys (idempotency_key, fingerprint, occurred_at)
    SELECT key, fingerprint, occurred_at FROM firsts
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING idempotency_key
), stored AS (
    -- In receipt order, so received_seq breaks ties between events of the same instant.
    INSERT INTO usage_events (occurred_at, idempotency_key, customer_id, meter_id, properties, value)
    SELECT f.occurred_at, f.key, f.customer_id, f.meter_id, f.properties, f.value
    FROM firsts f JOIN fresh ON fresh.idempotency_key = f.key
    ORDER BY f.ord
)
SELECT r.ord, r.key, (r.customer_id IS NOT NULL) AS customer_known, k.fingerprint AS mine,
       first.ord AS first_ord, first.fingerprint AS first_fingerprint,
       (fresh.idempotency_key IS NOT NULL) AS key_new, existing.fingerprint AS theirs
FROM resolved r
LEFT JOIN known k ON k.ord = r.ord
LEFT JOIN firsts first ON first.key = r.key
LEFT JOIN fresh ON fresh.idempotency_key = r.key
LEFT JOIN usage_keys existing ON existing.idempotency_key = r.key
ORDER BY r.ord
"""


async def insert_usage(connection: Connection, rows: UsageRows) -> list[Stored]:
    """Store new events of ``rows``; say for each whether it was new, a replay, or a conflict."""
    if not rows.keys:
        return []
    records = await connection.fetch(
        _INSERT,
        rows.keys, rows.customer_ids, rows.crm_ids, rows.meter_ids, rows.seconds, rows.nanos,
        rows.properties, rows.values,
    )  # fmt: skip
    outcomes: list[Stored] = []
    unseen: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        # Each copy is judged against the payload the key ends up stored with: the one stored
        # before this batch, else this batch's first copy, else a concurrent batch's.
        if not record["customer_known"]:
            outcomes.append(Stored.UNKNOWN_CUSTOMER)
        elif record["theirs"] is not None:
            outcomes.append(Stored.DUPLICATE if record["theirs"] == record["mine"] else Stored.CONFLICT)
        elif record["key_new"]:
            if record["ord"] == record["first_ord"]:
                outcomes.append(Stored.ACCEPTED)
            else:
                same = record["mine"] == record["first_fingerprint"]
                outcomes.append(Stored.DUPLICATE if same else Stored.CONFLICT)
        else:
            # Claimed by a concurrent batch after this statement's snapshot: look again below.
            unseen.setdefault(record["key"], []).append(index)
            outcomes.append(Stored.DUPLICATE)
    if unseen:
        found = await connection.fetch(
            "SELECT idempotency_key, fingerprint FROM usage_keys WHERE idempotency_key = ANY($1::text[])",
            list(unseen),
        )
        for record in found:
            for index in unseen[record["idempotency_key"]]:
                if record["fingerprint"] != records[index]["mine"]:
                    outcomes[index] = Stored.CONFLICT
    return outcomes


async def cancel_usage(connection: Connection, key: str) -> tuple[bool, datetime] | None:
    """Mark the event with ``key`` cancelled. None if no such event; (False, at) if it already was."""
    occurred_at = await connection.fetchval(
        "SELECT occurred_at FROM usage_keys WHERE idempotency_key = $1", key
    )
    if occurred_at is None:
        return None
    cancelled = await connection.fetchval(
        "UPDATE usage_events SET cancelled_at = now() "
        "WHERE idempotency_key = $1 AND occurred_at = $2 AND cancelled_at IS NULL RETURNING true",
        key,
        occurred_at,
    )
    return bool(cancelled), occurred_at


_AGGREGATES = {
    Aggregation.SUM: "coalesce(sum(value), 0)",
    Aggregation.COUNT: "count(*)::numeric",
    Aggregation.MAX: "coalesce(max(value), 0)",
    Aggregation.UNIQUE_COUNT: "count(DISTINCT properties ->> $7)::numeric",
    # The value of the event that happened last; among equals, the one received last.
    Aggregation.LATEST: "coalesce((array_agg(value ORDER BY occurred_at DESC, received_seq DESC))[1], 0)",
}


async def aggregate_usage(
    connection: Connection,
    *,
    customer_id: str,
    meter: Meter,
    filters: Sequence[tuple[str, str]],
    start: datetime,
    end: datetime,
    group_by: str = "",
) -> list[UsageTotal]:
    """The meter's quantity for one customer over ``[start, end)``, optionally per property value.

    This is the one aggregation both GetUsageSummary and the invoicer run; its semantics are
    those of ``billing.domain.usage.aggregate``, which the tests hold it to. Cancelled events
    never count.
    """
    sql = f"""
        SELECT coalesce(properties ->> $6::text, '') AS grp, {_AGGREGATES[meter.aggregation]} AS value,
               count(*) AS event_count
        FROM usage_events
        WHERE customer_id = $1 AND meter_id = $2 AND occurred_at >= $3 AND occurred_at < $4
          AND cancelled_at IS NULL AND properties @> ALL($5::jsonb[])
        GROUP BY 1 ORDER BY 1
    """
    params: list[object] = [
        customer_id,
        meter.id,
        start,
        end,
        [json.dumps({key: value}) for key, value in filters],
        group_by or None,
    ]
    if meter.aggregation is Aggregation.UNIQUE_COUNT:
        params.append(meter.value_property)
    records = await connection.fetch(sql, *params)
    return [UsageTotal(r["grp"], Decimal(r["value"]), r["event_count"]) for r in records]


async def ensure_partitions(connection: Connection, around: datetime) -> int:
    """Create monthly partitions from two months before ``around`` to three after."""
    created: int = await connection.fetchval(
        "SELECT ensure_usage_partitions("
        "$1::timestamptz - interval '2 months', $1::timestamptz + interval '3 months')",
        around,
    )
    return created


class PostgresUsageStore:
    """The usage port over a pool: each call is its own short transaction.

    ``insert`` is one statement, so it commits as it returns: an acknowledgement sent after it
    is an acknowledgement of committed events. A lost connection surfaces as ``Unavailable``,
    which callers may retry (the dedupe table makes the retry safe).
    """

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def insert(self, rows: UsageRows) -> list[Stored]:
        async with self._connection() as connection:
            return await insert_usage(connection, rows)

    async def cancel(self, key: str) -> tuple[bool, datetime] | None:
        async with self._connection() as connection:
            return await cancel_usage(connection, key)

    async def aggregate(
        self,
        *,
        customer_id: str,
        meter: Meter,
        filters: Sequence[tuple[str, str]],
        start: datetime,
        end: datetime,
        group_by: str = "",
    ) -> list[UsageTotal]:
        async with self._connection() as connection:
            return await aggregate_usage(
                connection, customer_id=customer_id, meter=meter, filters=filters, start=start, end=end,
                group_by=group_by,
            )  # fmt: skip

    async def ensure_partitions(self, around: datetime) -> int:
        async with self._connection() as connection:
            return await ensure_partitions(connection, around)

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        try:
            async with self._pool.acquire() as connection:
                yield connection
        except CONNECTION_ERRORS as error:
            raise Unavailable("the database is unavailable; retry") from error
