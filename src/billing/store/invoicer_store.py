"""The invoicer's storage port over asyncpg: claims, close inputs, and the fenced writes.

A close or a finalization reads what it needs outside any transaction (the worker holds a
lease, not a transaction, while it rates: DESIGN.md §6), then writes everything in ONE
transaction whose first statement is the fencing check. Errors leave as domain errors:
``Aborted`` (lease lost or state changed: release, maybe retry at once), ``FailedPrecondition``
(an inconsistency: park), ``Unavailable`` (the database: back off and retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import structlog

from billing.domain.catalog import Catalog, Meter
from billing.domain.errors import Aborted, FailedPrecondition, LeaseExpired
from billing.domain.invoices import (
    BilledUsage,
    BillingCustomer,
    CloseInputs,
    CloseResult,
    InvoiceLine,
    InvoiceLineKind,
    UsageWindow,
    adjustment_cutoff,
    usage_windows,
)
from billing.domain.pricing import Usage
from billing.domain.subscriptions import Coverage, Subscription
from billing.domain.tax import TaxRate, TaxTable
from billing.store import codec, invoices, period_queue
from billing.store._types import Connection
from billing.store.ids import new_id
from billing.store.period_queue import Claimed, LeaseLost, RetryPolicy, StaleState
from billing.store.unit_of_work import CONNECTION_ERRORS, pooled_connection
from billing.store.usage import window_total_sql

log = structlog.get_logger(__name__)

WAKEUP_CHANNEL = "invoicer_wakeup"


class Inconsistent(FailedPrecondition):
    """The stored state contradicts itself: park the subscription for a person, never guess."""


class LeaseGone(LeaseExpired):
    """The lease expired or was taken over: this worker must not write."""


class Changed(Aborted):
    """The subscription (or the customer's balance) changed after it was read: rate again."""


@dataclass(frozen=True)
class _Basis:
    """What a draft was rated from, stored on the invoice so finalization rates the same inputs
    again with the usage, balance and late lines of its own time."""

    subscription: Subscription
    boundary_index: int
    pending_prorations: tuple[InvoiceLine, ...]
    coverages: tuple[Coverage, ...]


# Everything a close reads but usage, in one round trip. has_payment_method is read through
# to_jsonb(c): it is a column of a later migration, and "absent" means the customer has one.
_CUSTOMER = """
    coalesce(c.billing_address ->> 'country', '') AS country,
    coalesce((to_jsonb(c) ->> 'has_payment_method')::boolean, true) AS has_payment_method,
    coalesce((SELECT b.balance FROM customer_balances b WHERE b.customer_id = c.id), 0) AS balance
"""
# Usage lines of finalized (not void) invoices whose window ended after the cutoff: a close
# rates them again for late events (billing-rules.md §3.4).
# NOTE: the lines are a subquery per invoice of the subscription, not a join. A prepared
# statement keeps the generic plan it chose in its first executions; chosen while invoice_lines
# and invoices were nearly empty (a new database, or bench/close.py) a join scanned all of both for
# every close until autovacuum analyzed them: 28 ms of PostgreSQL per close after 2,000 closes on
# one connection. As a subquery per invoice, a stale plan costs at worst a scan of one table.
_BILLED_LINES = """
    ARRAY(SELECT billed.line FROM invoices i CROSS JOIN LATERAL unnest(ARRAY(
              SELECT l.line::text FROM invoice_lines l
              WHERE l.invoice_id = i.id AND l.kind IN ('usage', 'usage_adjustment')
                AND l.period_end > ${cutoff}
              ORDER BY l.position)) WITH ORDINALITY AS billed(line, position)
          WHERE i.subscription_id = $2 AND i.status IN ('open', 'paid', 'uncollectible')
          ORDER BY i.boundary, billed.position) AS billed_lines
"""
_PENDING_AND_COVERAGES = """
    ARRAY(SELECT p.line::text FROM pending_proration_lines p
          WHERE p.subscription_id = $2 AND p.invoice_id IS NULL
          ORDER BY p.created_for, p.id) AS pending_lines,
    ARRAY(SELECT v.coverage::text FROM subscription_coverages v
          WHERE v.subscription_id = $2 AND v.credited_from IS NULL AND v.period_end > $3
          ORDER BY v.id) AS coverages,
"""


def _windows_sql(windows: Sequence[tuple[UsageWindow, Meter]], params: list[object]) -> tuple[str, str]:
    """The totals of usage windows for one statement: each window is a one-row LATERAL subquery
    ``u<i>``. Returns the joins and the columns to select; the windows' arguments are appended to
    ``params`` (which holds the statement's own before them)."""

    def param(value: object) -> str:
        params.append(value)
        return f"${len(params)}"

    joins = []
    for index, (window, meter) in enumerate(windows):
        total = window_total_sql(
            param, customer_id=window.customer_id, meter=meter, filters=window.filters,
            start=window.start, end=window.end, transactions=window.transactions,
        )  # fmt: skip
        joins.append(f"CROSS JOIN LATERAL ({total}) AS u{index}")
    return " ".join(joins), ", ".join(f"u{index}.*" for index in range(len(windows)))


def _reads_sql(columns: str, windows: Sequence[tuple[UsageWindow, Meter]], params: list[object]) -> str:
    """A close's (or a finalization's) reads of the customer ``$1`` and the totals of its usage
    windows, in ONE statement."""
    joins, totals = _windows_sql(windows, params)
    return f"SELECT {columns}{', ' if totals else ''}{totals} FROM customers c {joins} WHERE c.id = $1"


def _window_totals(
    row: Any, windows: Sequence[tuple[UsageWindow, Meter]], offset: int
) -> dict[UsageWindow, Usage]:
    """The windows' totals from a row of :func:`_reads_sql`, whose first ``offset`` columns are
    the reads'. Each window's columns are value, event_count and (when asked) transactions."""
    usage: dict[UsageWindow, Usage] = {}
    column = offset
    for window, _ in windows:
        quantity, count = row[column], row[column + 1]
        column += 2
        transactions: tuple[Decimal, ...] | None = None
        if window.transactions:
            transactions = tuple(row[column])
            column += 1
        usage[window] = Usage(quantity=quantity, transactions=transactions, transaction_count=count)
    return usage


# The close in one statement. `fenced` is the fencing check and the subscription's new state at
# once: it matches only while this worker's lease token is current and unexpired (clock_timestamp,
# not the statement's start) and the version is the one rated. Everything else hangs off it, so
# a lost lease writes nothing; the row lock it takes keeps anyone from claiming the row until the
# statement commits. A proration line marked twice, or not at all, aborts the whole statement.
_COMMIT_CLOSE = f"""
WITH fenced AS (
    UPDATE subscriptions
    SET state = $4::jsonb, status = $5, next_boundary_at = $6, version = version + 1,
        finalize_due_at = CASE WHEN $7::timestamptz IS NULL THEN finalize_due_at
                               ELSE LEAST(finalize_due_at, $7::timestamptz) END,
        lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL,
        attempts = 0, next_attempt_at = NULL, last_error = NULL, updated_at = now()
    WHERE id = $1 AND lease_token = $2 AND lease_expires_at > clock_timestamp() AND version = $3
    RETURNING id
), invoice AS (
    INSERT INTO invoices (id, customer_id, subscription_id, boundary, kind, currency, issuing_entity,
        period_start, period_end, subtotal, discount, tax, total, credit_applied, amount_due,
        finalize_at, rating_inputs, test_clock_id, traceparent)
    SELECT $9, $10, fenced.id, $11, $12, $13, $8, $14, $15, $16, $17, $18, $19, $20, $21, $7,
           $22::jsonb, $23, $24
    FROM fenced WHERE $9::text IS NOT NULL
    RETURNING id
), lines AS (
    {invoices.lines_sql(25)}
), event AS (
    INSERT INTO outbox_events (id, type, aggregate_id, payload, traceparent)
    SELECT $42, 'invoice.created', invoice.id, $43::jsonb, $24 FROM invoice
), covered AS (
    INSERT INTO subscription_coverages (subscription_id, id, period_end, credited_from, coverage)
    SELECT fenced.id, t.id, t.period_end, t.credited_from, t.coverage::jsonb
    FROM fenced, unnest($44::text[], $45::timestamptz[], $46::timestamptz[], $47::text[])
        AS t(id, period_end, credited_from, coverage)
    ON CONFLICT (subscription_id, id) DO UPDATE
    SET period_end = excluded.period_end, credited_from = excluded.credited_from,
        coverage = excluded.coverage
), invoiced AS (
    UPDATE pending_proration_lines p SET invoice_id = invoice.id
    FROM invoice
    WHERE p.subscription_id = $1 AND p.invoice_id IS NULL AND p.line = ANY($48::text[]::jsonb[])
    RETURNING p.id
)
SELECT EXISTS (SELECT FROM fenced)
    AND invoicer_assert((SELECT count(*) FROM invoiced) = cardinality($48::text[]),
                        'the invoiced proration lines are not exactly the pending ones')
"""


def _log_abandoned(row: period_queue.Abandoned) -> None:
    """The worker that held the row is gone, so the claim that found it says what happened."""
    if row.parked_reason is not None:
        log.error("subscription parked", subscription_id=row.subscription_id, reason=row.parked_reason)
    else:
        log.warning(
            "lease expired without an outcome", subscription_id=row.subscription_id, error=row.last_error
        )


@dataclass(frozen=True)
class InvoicerSettings:
    lease: timedelta = timedelta(seconds=30)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    owner: str = "invoicer"


class PostgresInvoicerStore:
    """Implements ``invoicer.usecases.ports.InvoicerStore`` on a pool."""

    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        catalog: Callable[[], Catalog],
        settings: InvoicerSettings,
        refresh_catalog: Callable[[], Awaitable[Catalog]] | None = None,
    ) -> None:
        self._pool = pool
        self._current_catalog = catalog
        self._refresh_catalog = refresh_catalog
        self._settings = settings
        self._taxes: TaxTable | None = None
        self._taxes_loaded = 0.0

    # --- the queue ---------------------------------------------------------------------------

    async def claim(self, limit: int) -> list[Claimed]:
        claims: list[Claimed] = []
        async with self._connection() as connection:
            while len(claims) < limit:
                leased, abandoned = await period_queue.claim(
                    connection, limit=limit - len(claims), owner=self._settings.owner,
                    lease=self._settings.lease, policy=self._settings.retry,
                )  # fmt: skip
                claims += leased
                for row in abandoned:
                    _log_abandoned(row)
                if not abandoned:  # rows of dead workers took places in this batch: claim again
                    break
        return claims

    async def renew(self, claims: Sequence[Claimed]) -> set[str]:
        async with self._connection() as connection:
            return await period_queue.renew(connection, [c.lease for c in claims], self._settings.lease)

    async def release(self, claim: Claimed) -> None:
        async with self._connection() as connection:
            await period_queue.release(connection, claim.lease)

    async def fail(self, claim: Claimed, error: str) -> str | None:
        async with self._connection() as connection:
            return await period_queue.fail(connection, claim.lease, error, self._settings.retry)

    async def park(self, claim: Claimed, reason: str) -> None:
        async with self._connection() as connection:
            await period_queue.park(connection, claim.lease, reason)

    async def release_all(self) -> int:
        async with self._connection() as connection:
            return await period_queue.release_all(connection, self._settings.owner)

    @contextlib.asynccontextmanager
    async def listen(self, wake: Callable[[], None]) -> AsyncIterator[None]:
        """Call ``wake`` on every NOTIFY to the invoicer (a hint; polling is the guarantee)."""

        def on_notify(*_: object) -> None:
            wake()

        connection: Any = None
        try:
            with contextlib.suppress(*CONNECTION_ERRORS):
                connection = await self._pool.acquire()
                await connection.add_listener(WAKEUP_CHANNEL, on_notify)
            yield
        finally:
            if connection is not None:
                with contextlib.suppress(Exception):
                    await connection.remove_listener(WAKEUP_CHANNEL, on_notify)
                with contextlib.suppress(Exception):
                    await self._pool.release(connection)

    # --- closing a boundary --------------------------------------------------------------------

    async def close_inputs(self, claim: Claimed) -> CloseInputs:
        sub: Subscription = claim.record.state
        catalog = await self._catalog(sub)
        async with self._connection() as connection:
            return await read_close_inputs(connection, sub, catalog, await self._tax_table(connection))

    async def commit_close(
        self, claim: Claimed, inputs: CloseInputs, result: CloseResult, finalize_at: datetime
    ) -> str | None:
        """Write the close as ONE statement (one round trip, one implicit transaction): the
        fencing update of the subscription, then, only if it matched, the draft, its lines, its
        outbox event, the invoiced proration lines and the new coverages. Returns the draft's id
        (None when the close invoiced nothing)."""
        sub = inputs.subscription
        boundary = sub.boundary(inputs.boundary_index)
        after, draft = result.subscription, result.draft
        invoice_id = new_id("in") if draft is not None else None
        invoice: list[Any] = [None] * 16
        lines: list[list[Any]] = invoices.line_arrays(())
        event: list[Any] = [None, None]
        if draft is not None and invoice_id is not None:
            start, end = invoices.invoice_period(draft)
            invoice = [
                invoice_id, draft.customer_id, boundary, _kind(sub, inputs.boundary_index, after),
                draft.currency, start, end, draft.subtotal, draft.discount, draft.tax, draft.total,
                draft.credit_applied, draft.amount_due, _basis_json(claim, inputs),
                claim.record.test_clock_id, claim.record.traceparent,
            ]  # fmt: skip
            lines = invoices.line_arrays(draft.lines)
            event = [new_id("evt"), json.dumps(invoices.invoice_payload(invoice_id, draft, "draft", None))]
        coverages = result.coverages
        try:
            async with self._connection() as connection:
                fenced = await connection.fetchval(
                    _COMMIT_CLOSE,
                    sub.id, claim.lease.token, claim.record.version, codec.to_json(after), after.status.value,
                    after.next_close_at, finalize_at if draft is not None else None,
                    claim.record.issuing_entity, *invoice, *lines, *event,
                    [c.id for c in coverages], [c.period.end for c in coverages],
                    [c.credited_from for c in coverages], [codec.to_json(c) for c in coverages],
                    [codec.to_json(line) for line in result.prorations_invoiced],
                )  # fmt: skip
                if not fenced:
                    await self._fence(connection, claim, version=claim.record.version)
                    raise LeaseGone(f"lease on subscription {sub.id} was lost before the close")
        except asyncpg.UniqueViolationError as error:
            raise Inconsistent(
                f"boundary {boundary.isoformat()} is not closed but already has an invoice"
            ) from error
        except asyncpg.DataError as error:
            raise Inconsistent(str(error)) from error
        return invoice_id

    # --- finalizing a draft --------------------------------------------------------------------

    async def finalize_inputs(self, claim: Claimed) -> tuple[str, CloseInputs] | None:
        """The earliest draft of the subscription whose grace window has ended, and its inputs
        rated again with today's usage, late lines and balance; None if no draft is due."""
        async with self._connection() as connection:
            row = await connection.fetchrow(
                "SELECT id, rating_inputs FROM invoices WHERE subscription_id = $1 AND status = 'draft' "
                "AND finalize_at <= $2 ORDER BY finalize_at, id LIMIT 1",
                claim.subscription_id,
                claim.customer_now,
            )
            if row is None:
                return None
            basis = codec.from_json(_Basis, row["rating_inputs"])
            sub, k = basis.subscription, basis.boundary_index
            catalog = await self._catalog(sub)
            windows = _with_meters(catalog, usage_windows(sub, k, catalog))
            params: list[object] = [sub.customer_id, sub.id, adjustment_cutoff(sub, k)]
            columns = f"{_CUSTOMER}, {_BILLED_LINES.format(cutoff=3)}"
            reads = await connection.fetchrow(_reads_sql(columns, windows, params), *params)
            if reads is None:
                raise Inconsistent(f"customer {sub.customer_id} of the subscription does not exist")
            usage = _window_totals(reads, windows, _FINALIZE_READ_COLUMNS)
            billed = await _billed(connection, catalog, reads["billed_lines"])
            taxes = await self._tax_table(connection)
        inputs = CloseInputs(
            subscription=sub,
            catalog=catalog,
            customer=BillingCustomer(reads["country"], reads["has_payment_method"]),
            boundary_index=k,
            usage=usage,
            pending_prorations=basis.pending_prorations,
            coverages=basis.coverages,
            billed_usage=tuple(billed),
            credit_balance=reads["balance"],
            tax_table=taxes,
        )
        return row["id"], inputs

    async def commit_finalize(
        self, claim: Claimed, invoice_id: str, inputs: CloseInputs, result: CloseResult
    ) -> str:
        """Replace the draft's lines and totals with the new rating, apply the credit balance,
        take the next gapless number and open the invoice, in one fenced transaction."""
        draft = result.draft
        if draft is None:
            raise Inconsistent(f"draft {invoice_id} rates to no invoice at finalization")
        async with self._transaction() as connection:
            await self._fence(connection, claim, version=None)
            balance = await invoices.locked_balance(connection, draft.customer_id, draft.currency)
            if balance != inputs.credit_balance:
                raise Changed("the customer's credit balance changed while the draft was rated")
            await invoices.delete_lines(connection, invoice_id)
            await invoices.insert_lines(connection, invoice_id, draft.lines)
            await invoices.apply_balance(connection, invoice_id, draft)
            # Last: the counter row stays locked until the commit, a few statements later.
            seq, number = await invoices.next_number(connection, claim.record.issuing_entity)
            status = await invoices.finalize(connection, invoice_id, draft, number_seq=seq, number=number)
            payload = invoices.invoice_payload(invoice_id, draft, status, number)
            await invoices.emit(
                connection, "invoice.finalized", invoice_id, payload, claim.record.traceparent
            )
            if status == "paid":
                await invoices.emit(connection, "invoice.paid", invoice_id, payload, claim.record.traceparent)
            await connection.execute(
                """
                UPDATE subscriptions
                SET finalize_due_at = (SELECT min(finalize_at) FROM invoices
                                       WHERE subscription_id = $1 AND status = 'draft'),
                    lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL,
                    attempts = 0, next_attempt_at = NULL, last_error = NULL
                WHERE id = $1
                """,
                claim.subscription_id,
            )
        return number

    # --- plumbing ------------------------------------------------------------------------------

    async def _catalog(self, sub: Subscription) -> Catalog:
        """The catalog snapshot, reloaded at once if it lacks a price the subscription uses: a
        subscription sold a minute-old price must not be rated (or parked) from an older snapshot
        because the watcher has not polled yet."""
        catalog = self._current_catalog()
        known = catalog.prices.keys()
        if self._refresh_catalog is not None and any(item.price_id not in known for item in sub.items):
            catalog = await self._refresh_catalog()
        return catalog

    async def _fence(self, connection: Connection, claim: Claimed, *, version: int | None) -> None:
        try:
            await period_queue.fence(connection, claim.lease, version=version)
        except LeaseLost as error:
            raise LeaseGone(str(error)) from None
        except StaleState as error:
            raise Changed(str(error)) from None

    async def _tax_table(self, connection: Connection) -> TaxTable:
        # Rates change rarely and by hand: reread them once a minute, not per close.
        now = asyncio.get_running_loop().time()
        if self._taxes is None or now - self._taxes_loaded > 60:
            self._taxes = await load_tax_table(connection)
            self._taxes_loaded = now
        return self._taxes

    def _connection(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        return pooled_connection(self._pool)

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Connection]:
        async with self._connection() as connection, connection.transaction():
            yield connection


async def read_close_inputs(
    connection: Connection, sub: Subscription, catalog: Catalog, taxes: TaxTable
) -> CloseInputs:
    """Everything the close of ``sub``'s next boundary reads: the invoicer's close and the API's
    PreviewInvoice both read through here, so a preview rates exactly what the close will.

    One round trip: the customer, pending proration lines, live coverages, billed usage lines and
    every usage window's total come from one statement (a second one only when a billed usage
    line must be rated again for late events)."""
    k = sub.next_boundary
    windows = _with_meters(catalog, usage_windows(sub, k, catalog))
    params: list[object] = [sub.customer_id, sub.id, sub.boundary(k - 1), adjustment_cutoff(sub, k)]
    columns = f"{_CUSTOMER}, {_PENDING_AND_COVERAGES} {_BILLED_LINES.format(cutoff=4)}"
    row = await connection.fetchrow(_reads_sql(columns, windows, params), *params)
    if row is None:
        raise Inconsistent(f"customer {sub.customer_id} of the subscription does not exist")
    billed = await _billed(connection, catalog, row["billed_lines"])
    return CloseInputs(
        subscription=sub,
        catalog=catalog,
        customer=BillingCustomer(row["country"], row["has_payment_method"]),
        boundary_index=k,
        usage=_window_totals(row, windows, _CLOSE_READ_COLUMNS),
        pending_prorations=tuple(codec.from_json(InvoiceLine, line) for line in row["pending_lines"]),
        coverages=tuple(codec.from_json(Coverage, c) for c in row["coverages"]),
        billed_usage=tuple(billed),
        credit_balance=row["balance"],
        tax_table=taxes,
    )


# country, has_payment_method, balance, pending_lines, coverages, billed_lines
_CLOSE_READ_COLUMNS = 6
# country, has_payment_method, balance, billed_lines
_FINALIZE_READ_COLUMNS = 4


def _with_meters(catalog: Catalog, windows: Sequence[UsageWindow]) -> list[tuple[UsageWindow, Meter]]:
    return [(window, catalog.meter(window.meter_id)) for window in windows]


async def read_billing_customer(connection: Connection, customer_id: str) -> tuple[BillingCustomer, int]:
    """The customer as billing sees it (country, payment method) and its credit balance."""
    row = await connection.fetchrow(f"SELECT {_CUSTOMER} FROM customers c WHERE c.id = $1", customer_id)
    if row is None:
        raise Inconsistent(f"customer {customer_id} does not exist")
    return BillingCustomer(row["country"], row["has_payment_method"]), row["balance"]


def _basis_json(claim: Claimed, inputs: CloseInputs) -> str:
    """The draft's ``_Basis`` as JSON. The subscription rated is the claimed row's state, so its
    text is spliced in as read instead of encoded again (the largest document of a close)."""
    pending, coverages = tuple(inputs.pending_prorations), tuple(inputs.coverages)
    if inputs.subscription is not claim.record.state or not claim.state_json:
        return codec.to_json(_Basis(inputs.subscription, inputs.boundary_index, pending, coverages))
    return (
        f'{{"$type":"_Basis","subscription":{claim.state_json},'
        f'"boundary_index":{inputs.boundary_index},"pending_prorations":{codec.to_json(pending)},'
        f'"coverages":{codec.to_json(coverages)}}}'
    )


def _kind(sub: Subscription, k: int, after: Subscription) -> str:
    if after.ended_at is not None:
        return "final"
    return "first" if k == sub.first_index else "closing"


async def load_tax_table(connection: Connection) -> TaxTable:
    rows = await connection.fetch("SELECT id, country, tax_code, percentage, display_name FROM tax_rates")
    rates: dict[tuple[str, str], TaxRate] = {}
    defaults: dict[str, TaxRate] = {}
    for row in rows:
        rate = TaxRate(row["id"], Decimal(row["percentage"]), row["display_name"])
        if row["tax_code"]:
            rates[(row["country"], row["tax_code"])] = rate
        else:
            defaults[row["country"]] = rate
    return TaxTable(rates=rates, defaults=defaults)


async def save_coverages(connection: Connection, subscription_id: str, coverages: Sequence[Coverage]) -> None:
    """Insert or replace coverages by id (a change credits one: it comes back with credited_from)."""
    await _save_coverages(connection, subscription_id, coverages)


async def _save_coverages(
    connection: Connection, subscription_id: str, coverages: Sequence[Coverage]
) -> None:
    if not coverages:
        return
    await connection.execute(
        """
        INSERT INTO subscription_coverages (subscription_id, id, period_end, credited_from, coverage)
        SELECT $1, t.id, t.period_end, t.credited_from, t.coverage::jsonb
        FROM unnest($2::text[], $3::timestamptz[], $4::timestamptz[], $5::text[])
            AS t(id, period_end, credited_from, coverage)
        ON CONFLICT (subscription_id, id) DO UPDATE
        SET period_end = excluded.period_end, credited_from = excluded.credited_from,
            coverage = excluded.coverage
        """,
        subscription_id,
        [c.id for c in coverages],
        [c.period.end for c in coverages],
        [c.credited_from for c in coverages],
        [codec.to_json(c) for c in coverages],
    )


async def _usage(
    connection: Connection, catalog: Catalog, windows: Sequence[UsageWindow]
) -> dict[UsageWindow, Usage]:
    """The totals of ``windows``, in one statement."""
    if not windows:
        return {}
    metered = _with_meters(catalog, windows)
    params: list[object] = []
    joins, totals = _windows_sql(metered, params)
    row = await connection.fetchrow(f"SELECT {totals} FROM (SELECT) AS one {joins}", *params)
    return _window_totals(row, metered, 0)


async def _billed(connection: Connection, catalog: Catalog, texts: Sequence[str]) -> list[BilledUsage]:
    """Each finalized usage line with what has been billed for it so far (the line and its
    adjustments) and today's usage of its window."""
    lines = [codec.from_json(InvoiceLine, text) for text in texts]
    usage_lines = [line for line in lines if line.kind is InvoiceLineKind.USAGE and line.window is not None]
    totals = await _usage(connection, catalog, [line.window for line in usage_lines if line.window])
    billed: list[BilledUsage] = []
    for line in usage_lines:
        assert line.window is not None
        so_far = line.amount + sum(
            other.amount
            for other in lines
            if other.kind is InvoiceLineKind.USAGE_ADJUSTMENT and other.window == line.window
        )
        billed.append(BilledUsage(line, so_far, totals[line.window]))
    return billed
