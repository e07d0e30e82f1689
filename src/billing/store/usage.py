"""Usage events in PostgreSQL: batched idempotent insert, cancellation, and aggregation.

Ingest is one statement per batch, one round trip: the columns go in as a few texts and
PostgreSQL turns text into jsonb and numeric and epoch microseconds into timestamptz, so no
Python object is built per event. The dedupe table's primary key is what makes a replay a
no-op; the statement answers only for the events it did not store.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from billing.domain.catalog import Aggregation, Meter
from billing.domain.usage import DEFAULT_WINDOW, ClockTimes, LateWindow, Stored, UsageRows, UsageTotal
from billing.store._types import Connection
from billing.store.unit_of_work import pooled_connection

# NOTE: the fingerprint hashes the resolved customer id (not the reference used), the meter, the
# instant, the properties as jsonb and the value as numeric (hash_record_extended, 64 bits; see
# migration 0008): jsonb hashes its canonical form and numeric ignores trailing zeros, so
# "1.50" and "1.5", or a customer named by id and by CRM id, are one payload. Migration 0008
# hashes stored events with the same field types; change both together or never.
#
# Columns arrive as text joined by U+001F, which none of them can contain (ids and values are
# validated, properties are JSON, which escapes control characters), and are split here: one
# text is encoded far faster than an array. Keys and CRM ids may hold any character but NUL:
# keys come joined too unless one holds the separator, then as an array ($1, else $8); CRM ids
# as an array, NULL when no event uses one. A lone '' splits into no element at all; unnest
# pads the shorter arrays with NULL, which reads like '' for the customer reference and value.
#
# The keys of one statement are distinct (insert_usage sends repeats in later rounds). Only the
# events not stored now come back: unknown customers and keys already taken, with the payload
# that took them as this statement's snapshot saw it (NULL if a concurrent batch took the key
# after the snapshot). received_seq is one sequence value per statement, shifted past the
# batch's positions (at most 10,000 < 2^14), so the order of receipt costs no nextval per event.
#
# A test clock's customer lives in its clock's time: its event must fall in the late window
# ($9 seconds back, $10 ahead) around the clock's frozen_time, read in this statement, whatever
# the server's time says (the caller checked the server's window, or the clock's for events
# outside it; an event in the server's window may still be years from the clock's).
SEPARATOR = "\x1f"
_INSERT = """
WITH input AS (
    SELECT * FROM unnest(coalesce($1::text[], string_to_array($8, E'\\x1f')), string_to_array($2, E'\\x1f'),
                         $3::text[], string_to_array($4, E'\\x1f'),
                         string_to_array($5, E'\\x1f')::bigint[], string_to_array($6, E'\\x1f'),
                         string_to_array($7, E'\\x1f'))
        WITH ORDINALITY AS t(key, customer_ref, crm_ref, meter_id, micros, props, value, ord)
), resolved AS (
    SELECT r.*, hash_record_extended((r.customer_id, r.meter_id, r.occurred_at, r.properties, r.value), 0)
                AS fingerprint,
           coalesce(r.occurred_at BETWEEN clock.frozen_time - $9 * interval '1 second'
                    AND clock.frozen_time + $10 * interval '1 second', true) AS in_clock_window
    FROM (
        SELECT i.ord, i.key, coalesce(by_id.id, by_crm.id) AS customer_id, i.meter_id,
               coalesce(by_id.test_clock_id, by_crm.test_clock_id) AS clock_id,
               timestamptz 'epoch' + i.micros * interval '1 microsecond' AS occurred_at,
               i.props::jsonb AS properties, trim_scale(nullif(i.value, '')::numeric) AS value
        FROM input i
        LEFT JOIN customers by_id ON by_id.id = i.customer_ref
        LEFT JOIN customers by_crm ON by_crm.crm_account_id = i.crm_ref
    ) r
    LEFT JOIN test_clocks clock ON clock.id = r.clock_id
), fresh AS (
    INSERT INTO usage_keys (idempotency_key, fingerprint, occurred_at, customer_id, meter_id)
    SELECT key, fingerprint, occurred_at, customer_id, meter_id FROM resolved
    WHERE customer_id IS NOT NULL AND in_clock_window
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING idempotency_key
), stored AS (
    INSERT INTO usage_events (occurred_at, idempotency_key, customer_id, meter_id, properties, value,
                              received_seq)
    SELECT r.occurred_at, r.key, r.customer_id, r.meter_id, r.properties, r.value,
           (SELECT nextval('usage_received_seq')) * 16384 + r.ord
    FROM resolved r JOIN fresh ON fresh.idempotency_key = r.key
)
SELECT r.ord, r.customer_id IS NOT NULL AS customer_known, r.in_clock_window, r.fingerprint AS mine,
       CASE WHEN r.customer_id IS NOT NULL AND r.in_clock_window
            THEN (SELECT k.fingerprint FROM usage_keys k WHERE k.idempotency_key = r.key) END AS theirs
FROM resolved r
WHERE r.customer_id IS NULL OR NOT r.in_clock_window
   OR NOT EXISTS (SELECT FROM fresh WHERE fresh.idempotency_key = r.key)
"""


async def insert_usage(
    connection: Connection, rows: UsageRows, window: LateWindow = DEFAULT_WINDOW
) -> list[Stored]:
    """Store new events of ``rows``; say for each whether it was new, a replay, a conflict, of an
    unknown customer, or outside the ``window`` around its customer's test clock.

    Each copy of a key is judged against the payload the key ends up stored with: the one
    stored before, else its first copy here, else a concurrent batch's. One statement cannot
    see its own rows, so repeated keys go in rounds (first copies, then second copies...),
    in one transaction.
    """
    rounds = _rounds(rows.keys)
    if len(rounds) <= 1:
        return await _insert_distinct(connection, rows, window) if rows.keys else []
    outcomes = [Stored.ACCEPTED] * len(rows)
    async with connection.transaction():
        for indexes in rounds:
            stored = await _insert_distinct(connection, rows.select(indexes), window)
            for index, outcome in zip(indexes, stored, strict=True):
                outcomes[index] = outcome
    return outcomes


def _rounds(keys: list[str]) -> list[list[int]]:
    """Row indexes by copy of their key: every first copy, then every second copy, ..."""
    if len(set(keys)) == len(keys):
        return [list(range(len(keys)))] if keys else []
    copies: dict[str, int] = {}
    rounds: list[list[int]] = []
    for index, key in enumerate(keys):
        copy = copies.get(key, 0)
        copies[key] = copy + 1
        if copy == len(rounds):
            rounds.append([])
        rounds[copy].append(index)
    return rounds


async def _insert_distinct(connection: Connection, rows: UsageRows, window: LateWindow) -> list[Stored]:
    join = SEPARATOR.join
    keys = join(rows.keys)
    joinable = keys.count(SEPARATOR) == len(rows) - 1
    records = await connection.fetch(
        _INSERT,
        None if joinable else rows.keys, join(rows.customer_ids), rows.crm_ids if any(rows.crm_ids) else None,
        join(rows.meter_ids), join(map(str, rows.micros)), join(rows.properties), join(rows.values),
        keys if joinable else None, window.back.total_seconds(), window.ahead.total_seconds(),
    )  # fmt: skip
    outcomes = [Stored.ACCEPTED] * len(rows)
    unseen: dict[str, int] = {}
    for record in records:
        index = record["ord"] - 1
        if not record["customer_known"]:
            outcomes[index] = Stored.UNKNOWN_CUSTOMER
        elif not record["in_clock_window"]:
            outcomes[index] = Stored.OUTSIDE_CLOCK_WINDOW
        elif record["theirs"] is None:
            # Taken by a concurrent batch after this statement's snapshot: look again below.
            unseen[rows.keys[index]] = index
            outcomes[index] = Stored.DUPLICATE
        else:
            outcomes[index] = Stored.DUPLICATE if record["theirs"] == record["mine"] else Stored.CONFLICT
    if unseen:
        found = await connection.fetch(
            "SELECT idempotency_key, fingerprint FROM usage_keys WHERE idempotency_key = ANY($1::text[])",
            list(unseen),
        )
        mine = {record["ord"] - 1: record["mine"] for record in records}
        for record in found:
            index = unseen[record["idempotency_key"]]
            if record["fingerprint"] != mine[index]:
                outcomes[index] = Stored.CONFLICT
    return outcomes


async def cancel_usage(connection: Connection, key: str) -> tuple[bool, datetime] | None:
    """Mark the event with ``key`` cancelled. None if no such event; (False, at) if it already was."""
    event = await connection.fetchrow(
        "SELECT occurred_at, customer_id, meter_id FROM usage_keys WHERE idempotency_key = $1", key
    )
    if event is None:
        return None
    # The aggregation index holds only events that still count: finding none means cancelled.
    cancelled = await connection.fetchval(
        "UPDATE usage_events SET cancelled_at = now() "
        "WHERE customer_id = $2 AND meter_id = $3 AND occurred_at = $4 AND idempotency_key = $1 "
        "AND cancelled_at IS NULL RETURNING true",
        key,
        event["customer_id"],
        event["meter_id"],
        event["occurred_at"],
    )
    return bool(cancelled), event["occurred_at"]


_AGGREGATES = {
    Aggregation.SUM: "coalesce(sum(value), 0)",
    Aggregation.COUNT: "count(*)::numeric",
    Aggregation.MAX: "coalesce(max(value), 0)",
    Aggregation.UNIQUE_COUNT: "count(DISTINCT properties ->> {property}::text)::numeric",
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

    This is the one aggregation both GetUsageSummary and the invoicer run (the invoicer through
    :func:`window_total_sql`, built from the same fragments); its semantics are those of
    ``billing.domain.usage.aggregate``, which the tests hold it to. Cancelled events never count.
    """
    params: list[object] = []

    def param(value: object) -> str:
        params.append(value)
        return f"${len(params)}"

    where = _window_where(param, customer_id, meter, filters, start, end)
    value = _aggregate(param, meter)
    group = f"coalesce(properties ->> {param(group_by)}::text, '')" if group_by else "''"
    # GROUP BY even without grouping: no event in range is no row, not a row of zeros.
    sql = f"""
        SELECT {group} AS grp, {value} AS value, count(*) AS event_count
        FROM usage_events WHERE {where}
        GROUP BY 1 ORDER BY 1
    """
    records = await connection.fetch(sql, *params)
    return [UsageTotal(r["grp"], Decimal(r["value"]), r["event_count"]) for r in records]


def window_total_sql(
    param: Callable[[object], str],
    *,
    customer_id: str,
    meter: Meter,
    filters: Sequence[tuple[str, str]],
    start: datetime,
    end: datetime,
    transactions: bool = False,
) -> str:
    """One window's total as a subquery of exactly one row: ``value`` and ``event_count`` (0 and
    0 when no event matched: what :func:`aggregate_usage` means by no row), and with
    ``transactions`` the matching values in the order they happened. ``param`` numbers the
    arguments, so several windows can share one statement (the invoicer reads a close's
    windows in one round trip)."""
    where = _window_where(param, customer_id, meter, filters, start, end)
    values = ""
    if transactions:
        values = (
            f", ARRAY(SELECT value FROM usage_events WHERE {where} AND value IS NOT NULL"
            " ORDER BY occurred_at, received_seq) AS transactions"
        )
    value = _aggregate(param, meter)
    return f"SELECT {value} AS value, count(*) AS event_count{values} FROM usage_events WHERE {where}"


def _aggregate(param: Callable[[object], str], meter: Meter) -> str:
    value = _AGGREGATES[meter.aggregation]
    if meter.aggregation is Aggregation.UNIQUE_COUNT:
        value = value.format(property=param(meter.value_property))
    return value


def _window_where(
    param: Callable[[object], str],
    customer_id: str,
    meter: Meter,
    filters: Sequence[tuple[str, str]],
    start: datetime,
    end: datetime,
) -> str:
    # Properties are named only when needed: a sum, count or max without filters or grouping
    # then reads nothing but the aggregation index (an index-only scan once vacuumed).
    where = (
        f"customer_id = {param(customer_id)} AND meter_id = {param(meter.id)} "
        f"AND occurred_at >= {param(start)} AND occurred_at < {param(end)} AND cancelled_at IS NULL"
    )
    if filters:
        documents = [json.dumps({key: value}) for key, value in filters]
        where += f" AND properties @> ALL({param(documents)}::jsonb[])"
    return where


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

    async def insert(self, rows: UsageRows, window: LateWindow) -> list[Stored]:
        async with self._connection() as connection:
            return await insert_usage(connection, rows, window)

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

    async def clock_times(self, customer_ids: Sequence[str], crm_account_ids: Sequence[str]) -> ClockTimes:
        async with self._connection() as connection:
            rows = await connection.fetch(
                "SELECT c.id, c.crm_account_id, t.frozen_time FROM customers c"
                " JOIN test_clocks t ON t.id = c.test_clock_id"
                " WHERE c.id = ANY($1::text[]) OR c.crm_account_id = ANY($2::text[])",
                customer_ids,
                crm_account_ids,
            )
            # A clock's time may be years from the server's: its events need partitions there.
            for frozen_time in {row["frozen_time"] for row in rows}:
                await ensure_partitions(connection, frozen_time)
        return ClockTimes(
            {row["id"]: row["frozen_time"] for row in rows},
            {row["crm_account_id"]: row["frozen_time"] for row in rows if row["crm_account_id"]},
        )

    def _connection(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        return pooled_connection(self._pool)
