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
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from billing.domain.catalog import Catalog
from billing.domain.errors import Aborted, FailedPrecondition, Unavailable
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
from billing.store.subscriptions import register_state_type
from billing.store.unit_of_work import CONNECTION_ERRORS
from billing.store.usage import aggregate_usage

register_state_type(Subscription)

WAKEUP_CHANNEL = "invoicer_wakeup"


class Inconsistent(FailedPrecondition):
    """The stored state contradicts itself: park the subscription for a person, never guess."""


class LeaseGone(Aborted):
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
    ) -> None:
        self._pool = pool
        self._catalog = catalog
        self._settings = settings
        self._taxes: TaxTable | None = None
        self._taxes_loaded = 0.0

    # --- the queue ---------------------------------------------------------------------------

    async def claim(self, limit: int) -> list[Claimed]:
        async with self._connection() as connection:
            return await period_queue.claim(
                connection, limit=limit, owner=self._settings.owner, lease=self._settings.lease
            )

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
        k = sub.next_boundary
        catalog = self._catalog()
        async with self._connection() as connection:
            customer, credit = await _customer(connection, sub.customer_id)
            pending = await _pending(connection, sub.id)
            coverages = await _coverages(connection, sub.id, sub.boundary(k - 1))
            usage = await _usage(connection, catalog, usage_windows(sub, k, catalog))
            billed = await _billed_usage(connection, catalog, sub.id, adjustment_cutoff(sub, k))
            taxes = await self._tax_table(connection)
        return CloseInputs(
            subscription=sub,
            catalog=catalog,
            customer=customer,
            boundary_index=k,
            usage=usage,
            pending_prorations=tuple(line for _, line in pending),
            coverages=tuple(coverages),
            billed_usage=tuple(billed),
            credit_balance=credit,
            tax_table=taxes,
        )

    async def commit_close(
        self, claim: Claimed, inputs: CloseInputs, result: CloseResult, finalize_at: datetime
    ) -> str | None:
        """Write the close in one fenced transaction: the draft, its lines, the outbox event, the
        invoiced proration lines, the new coverages and the subscription after the boundary.
        Returns the draft's id (None when the close invoiced nothing)."""
        sub = inputs.subscription
        boundary = sub.boundary(inputs.boundary_index)
        after = result.subscription
        invoice_id = new_id("in") if result.draft is not None else None
        async with self._transaction() as connection:
            await self._fence(connection, claim, version=claim.record.version)
            if result.draft is not None and invoice_id is not None:
                basis = _Basis(
                    sub, inputs.boundary_index, tuple(inputs.pending_prorations), tuple(inputs.coverages)
                )
                try:
                    await invoices.insert_draft(
                        connection,
                        result.draft,
                        invoice_id=invoice_id,
                        kind=_kind(sub, inputs.boundary_index, after),
                        boundary=boundary,
                        issuing_entity=claim.record.issuing_entity,
                        finalize_at=finalize_at,
                        rating_inputs=codec.to_json(basis),
                        test_clock_id=claim.record.test_clock_id,
                        traceparent=claim.record.traceparent,
                    )
                except asyncpg.UniqueViolationError as error:
                    raise Inconsistent(
                        f"boundary {boundary.isoformat()} is not closed but already has an invoice"
                    ) from error
                await invoices.emit(
                    connection,
                    "invoice.created",
                    invoice_id,
                    invoices.invoice_payload(invoice_id, result.draft, "draft", None),
                    claim.record.traceparent,
                )
            await _mark_invoiced(connection, sub.id, invoice_id, result.prorations_invoiced)
            await _save_coverages(connection, sub.id, result.coverages)
            await connection.execute(
                """
                UPDATE subscriptions
                SET state = $2::jsonb, status = $3, next_boundary_at = $4, version = version + 1,
                    finalize_due_at = CASE WHEN $5::timestamptz IS NULL THEN finalize_due_at
                                           ELSE LEAST(finalize_due_at, $5::timestamptz) END,
                    lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL,
                    attempts = 0, next_attempt_at = NULL, last_error = NULL, updated_at = now()
                WHERE id = $1
                """,
                sub.id,
                codec.to_json(after),
                after.status.value,
                after.next_close_at,
                finalize_at if invoice_id is not None else None,
            )
        return invoice_id

    # --- finalizing a draft --------------------------------------------------------------------

    async def finalize_inputs(self, claim: Claimed) -> tuple[str, CloseInputs] | None:
        """The earliest draft of the subscription whose grace window has ended, and its inputs
        rated again with today's usage, late lines and balance; None if no draft is due."""
        catalog = self._catalog()
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
            customer, credit = await _customer(connection, sub.customer_id)
            usage = await _usage(connection, catalog, usage_windows(sub, k, catalog))
            billed = await _billed_usage(connection, catalog, sub.id, adjustment_cutoff(sub, k))
            taxes = await self._tax_table(connection)
        inputs = CloseInputs(
            subscription=sub,
            catalog=catalog,
            customer=customer,
            boundary_index=k,
            usage=usage,
            pending_prorations=basis.pending_prorations,
            coverages=basis.coverages,
            billed_usage=tuple(billed),
            credit_balance=credit,
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

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        try:
            async with self._pool.acquire() as connection:
                yield connection
        except CONNECTION_ERRORS as error:
            raise Unavailable("the database is unavailable") from error

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Connection]:
        async with self._connection() as connection, connection.transaction():
            yield connection


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


async def _customer(connection: Connection, customer_id: str) -> tuple[BillingCustomer, int]:
    # to_jsonb(c): has_payment_method is a column of a later migration; absent means "has one".
    row = await connection.fetchrow(
        """
        SELECT coalesce(c.billing_address ->> 'country', '') AS country,
               coalesce((to_jsonb(c) ->> 'has_payment_method')::boolean, true) AS has_payment_method,
               coalesce(b.balance, 0) AS balance
        FROM customers c LEFT JOIN customer_balances b ON b.customer_id = c.id
        WHERE c.id = $1
        """,
        customer_id,
    )
    if row is None:
        raise Inconsistent(f"customer {customer_id} of the subscription does not exist")
    return BillingCustomer(row["country"], row["has_payment_method"]), row["balance"]


async def _pending(connection: Connection, subscription_id: str) -> list[tuple[str, InvoiceLine]]:
    rows = await connection.fetch(
        "SELECT id, line FROM pending_proration_lines WHERE subscription_id = $1 AND invoice_id IS NULL "
        "ORDER BY created_for, id",
        subscription_id,
    )
    return [(row["id"], codec.from_json(InvoiceLine, row["line"])) for row in rows]


async def _mark_invoiced(
    connection: Connection, subscription_id: str, invoice_id: str | None, lines: Sequence[InvoiceLine]
) -> None:
    """Set ``invoice_id`` on the pending rows of ``lines``, each exactly once."""
    if not lines:
        return
    if invoice_id is None:
        raise Inconsistent("proration lines were invoiced without an invoice")
    available = await _pending(connection, subscription_id)
    chosen: list[str] = []
    for line in lines:
        match = next((i for i, (row_id, pending) in enumerate(available) if pending == line), None)
        if match is None:
            raise Inconsistent("an invoiced proration line is not pending any more")
        chosen.append(available.pop(match)[0])
    await connection.execute(
        "UPDATE pending_proration_lines SET invoice_id = $2 WHERE id = ANY($1::text[])", chosen, invoice_id
    )


async def _coverages(connection: Connection, subscription_id: str, after: datetime) -> list[Coverage]:
    rows = await connection.fetch(
        "SELECT coverage FROM subscription_coverages "
        "WHERE subscription_id = $1 AND credited_from IS NULL AND period_end > $2 ORDER BY id",
        subscription_id,
        after,
    )
    return [codec.from_json(Coverage, row["coverage"]) for row in rows]


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
    usage: dict[UsageWindow, Usage] = {}
    for window in windows:
        usage[window] = await _window_usage(connection, catalog, window)
    return usage


async def _window_usage(connection: Connection, catalog: Catalog, window: UsageWindow) -> Usage:
    meter = catalog.meter(window.meter_id)
    totals = await aggregate_usage(
        connection,
        customer_id=window.customer_id,
        meter=meter,
        filters=window.filters,
        start=window.start,
        end=window.end,
    )
    quantity = totals[0].value if totals else Decimal(0)
    count = totals[0].event_count if totals else 0
    transactions: tuple[Decimal, ...] | None = None
    if window.transactions:
        rows = await connection.fetch(
            """
            SELECT value FROM usage_events
            WHERE customer_id = $1 AND meter_id = $2 AND occurred_at >= $3 AND occurred_at < $4
              AND cancelled_at IS NULL AND properties @> ALL($5::jsonb[]) AND value IS NOT NULL
            ORDER BY occurred_at, received_seq
            """,
            window.customer_id,
            window.meter_id,
            window.start,
            window.end,
            [json.dumps({key: value}) for key, value in window.filters],
        )
        transactions = tuple(Decimal(row["value"]) for row in rows)
    return Usage(quantity=quantity, transactions=transactions, transaction_count=count)


async def _billed_usage(
    connection: Connection, catalog: Catalog, subscription_id: str, cutoff: datetime
) -> list[BilledUsage]:
    """Usage lines of finalized (not void) invoices whose window ended after ``cutoff``, each with
    what has been billed for it so far and today's usage of its window."""
    rows = await connection.fetch(
        """
        SELECT l.kind, l.line FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id
        WHERE i.subscription_id = $1 AND i.status IN ('open', 'paid', 'uncollectible')
          AND l.kind IN ('usage', 'usage_adjustment') AND l.period_end > $2
        ORDER BY i.boundary, l.position
        """,
        subscription_id,
        cutoff,
    )
    lines = [codec.from_json(InvoiceLine, row["line"]) for row in rows]
    originals = [line for line in lines if line.kind is InvoiceLineKind.USAGE and line.window is not None]
    billed: list[BilledUsage] = []
    for line in originals:
        so_far = line.amount + sum(
            other.amount
            for other in lines
            if other.kind is InvoiceLineKind.USAGE_ADJUSTMENT and other.window == line.window
        )
        assert line.window is not None
        billed.append(BilledUsage(line, so_far, await _window_usage(connection, catalog, line.window)))
    return billed
