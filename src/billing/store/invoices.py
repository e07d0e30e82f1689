"""Invoices and their lines, gapless numbers, the credit-balance ledger and the outbox, in SQL.

Each function runs inside the caller's transaction; the invoicer's adapter
(:mod:`billing.store.invoicer_store`) puts a close or a finalization in one transaction with its
fencing check. A finalized invoice is immutable by the database's triggers (0005), whatever
this module does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from fractions import Fraction
from typing import Any

from billing.domain.invoices import InvoiceDraft, InvoiceLine
from billing.store import codec
from billing.store._types import Connection
from billing.store.ids import new_id


def _fraction(value: Fraction | None) -> str | None:
    return None if value is None else f"{value.numerator}/{value.denominator}"


_INSERT_LINES = """
INSERT INTO invoice_lines (invoice_id, position, kind, description, price_id, product_id, item_key,
    quantity, unit_amount, amount_unrounded, amount, discount, tax, tax_rate_id, tax_percentage,
    period_start, period_end, proration_factor, line)
SELECT $1, t.position - 1, t.kind, t.description, t.price_id, t.product_id, t.item_key,
    t.quantity::numeric, t.unit_amount::numeric, t.amount_unrounded, t.amount, t.discount, t.tax,
    t.tax_rate_id, t.tax_percentage::numeric, t.period_start, t.period_end, t.proration_factor,
    t.line::jsonb
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
            $9::text[], $10::bigint[], $11::bigint[], $12::bigint[], $13::text[], $14::text[],
            $15::timestamptz[], $16::timestamptz[], $17::text[], $18::text[])
    WITH ORDINALITY AS t(kind, description, price_id, product_id, item_key, quantity, unit_amount,
        amount_unrounded, amount, discount, tax, tax_rate_id, tax_percentage, period_start,
        period_end, proration_factor, line, position)
"""


def _line_arrays(lines: Sequence[InvoiceLine]) -> list[list[Any]]:
    columns: list[list[Any]] = [[] for _ in range(17)]
    for line in lines:
        values = (
            line.kind.value,
            line.description,
            line.price_id,
            line.product_id,
            line.item_key,
            codec.encode(line.quantity),
            None if line.unit_amount is None else codec.encode(line.unit_amount),
            _fraction(line.unrounded_amount),
            line.amount,
            line.discount,
            line.tax,
            None if line.tax_rate is None else line.tax_rate.id,
            None if line.tax_rate is None else codec.encode(line.tax_rate.percentage),
            line.period.start,
            line.period.end,
            _fraction(line.proration_factor),
            codec.to_json(line),
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    return columns


async def insert_lines(connection: Connection, invoice_id: str, lines: Sequence[InvoiceLine]) -> None:
    if lines:
        await connection.execute(_INSERT_LINES, invoice_id, *_line_arrays(lines))


async def delete_lines(connection: Connection, invoice_id: str) -> None:
    """Remove a draft's lines (the trigger refuses it for a finalized invoice)."""
    await connection.execute("DELETE FROM invoice_lines WHERE invoice_id = $1", invoice_id)


async def insert_draft(
    connection: Connection,
    draft: InvoiceDraft,
    *,
    invoice_id: str,
    kind: str,
    boundary: datetime | None,
    issuing_entity: str,
    finalize_at: datetime | None,
    rating_inputs: str | None,
    test_clock_id: str | None,
    traceparent: str | None,
) -> None:
    """Insert ``draft`` as a draft invoice with its lines.

    Raises asyncpg's UniqueViolationError (``invoices_subscription_boundary_key``) if the
    subscription already has an invoice for ``boundary``.
    """
    # The invoice's period spans what its usage lines cover and what its fees pay for.
    first, last = (draft.usage_period or draft.fee_period), (draft.fee_period or draft.usage_period)
    period_start = first.start if first is not None else None
    period_end = last.end if last is not None else None
    await connection.execute(
        """
        INSERT INTO invoices (id, customer_id, subscription_id, boundary, kind, currency, issuing_entity,
            period_start, period_end, subtotal, discount, tax, total, credit_applied, amount_due,
            finalize_at, rating_inputs, test_clock_id, traceparent)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17::jsonb, $18, $19)
        """,
        invoice_id,
        draft.customer_id,
        draft.subscription_id,
        boundary,
        kind,
        draft.currency,
        issuing_entity,
        period_start,
        period_end,
        draft.subtotal,
        draft.discount,
        draft.tax,
        draft.total,
        draft.credit_applied,
        draft.amount_due,
        finalize_at,
        rating_inputs,
        test_clock_id,
        traceparent,
    )
    await insert_lines(connection, invoice_id, draft.lines)


async def next_number(connection: Connection, issuing_entity: str) -> tuple[int, str]:
    """Take the next gapless number of ``issuing_entity`` (``INV-000042``).

    Call it last before the commit: the counter row stays locked until then, serialising every
    finalization of the entity, and a rollback gives the number back.
    """
    row = await connection.fetchrow(
        """
        INSERT INTO invoice_number_counters AS c (issuing_entity, prefix, last_number) VALUES ($1, 'INV', 1)
        ON CONFLICT (issuing_entity) DO UPDATE SET last_number = c.last_number + 1
        RETURNING c.last_number, c.prefix
        """,
        issuing_entity,
    )
    assert row is not None
    return row["last_number"], f"{row['prefix']}-{row['last_number']:06d}"


async def finalize(
    connection: Connection,
    invoice_id: str,
    draft: InvoiceDraft,
    *,
    number_seq: int,
    number: str,
) -> str:
    """Give the draft its final totals and number; open it (paid at once when nothing is due)."""
    status = "open" if draft.amount_due > 0 else "paid"
    await connection.execute(
        """
        UPDATE invoices
        SET subtotal = $2, discount = $3, tax = $4, total = $5, credit_applied = $6, amount_due = $7,
            number = $8, number_seq = $9, status = $10, finalized_at = now(), status_changed_at = now(),
            paid_at = CASE WHEN $10 = 'paid' THEN now() END, updated_at = now()
        WHERE id = $1 AND status = 'draft'
        """,
        invoice_id,
        draft.subtotal,
        draft.discount,
        draft.tax,
        draft.total,
        draft.credit_applied,
        draft.amount_due,
        number,
        number_seq,
        status,
    )
    return status


async def locked_balance(connection: Connection, customer_id: str, currency: str) -> int:
    """The customer's credit balance, its row locked until the transaction ends."""
    await connection.execute(
        "INSERT INTO customer_balances (customer_id, currency) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        customer_id,
        currency,
    )
    balance: int = await connection.fetchval(
        "SELECT balance FROM customer_balances WHERE customer_id = $1 FOR UPDATE", customer_id
    )
    return balance


async def balance(connection: Connection, customer_id: str) -> int:
    value = await connection.fetchval(
        "SELECT balance FROM customer_balances WHERE customer_id = $1", customer_id
    )
    return int(value or 0)


async def apply_balance(connection: Connection, invoice_id: str, draft: InvoiceDraft) -> None:
    """Record what the invoice took from (or, when negative, gave to) the customer's balance."""
    entries: list[tuple[int, str]] = []
    if draft.credit_applied:
        entries.append((-draft.credit_applied, "applied to invoice"))
    if draft.total < 0:
        entries.append((-draft.total, "invoice total below zero"))
    for amount, reason in entries:
        await connection.execute(
            "INSERT INTO customer_balance_transactions "
            "(id, customer_id, currency, amount, invoice_id, reason) VALUES ($1, $2, $3, $4, $5, $6)",
            new_id("cbtxn"),
            draft.customer_id,
            draft.currency,
            amount,
            invoice_id,
            reason,
        )
    if entries:
        await connection.execute(
            "UPDATE customer_balances SET balance = $2, updated_at = now() WHERE customer_id = $1",
            draft.customer_id,
            draft.credit_balance_after,
        )


async def emit(
    connection: Connection,
    event_type: str,
    aggregate_id: str,
    payload: dict[str, Any],
    traceparent: str | None,
) -> None:
    """Write an outbox event in the caller's transaction (it commits with the state change)."""
    await connection.execute(
        "INSERT INTO outbox_events (id, type, aggregate_id, payload, traceparent) "
        "VALUES ($1, $2, $3, $4::jsonb, $5)",
        new_id("evt"),
        event_type,
        aggregate_id,
        json.dumps(payload, separators=(",", ":")),
        traceparent,
    )


def invoice_payload(invoice_id: str, draft: InvoiceDraft, status: str, number: str | None) -> dict[str, Any]:
    """The outbox event body: amounts as integers of minor units, never JSON floats."""
    return {
        "id": invoice_id,
        "number": number,
        "status": status,
        "customer_id": draft.customer_id,
        "subscription_id": draft.subscription_id,
        "currency": draft.currency,
        "total": draft.total,
        "amount_due": draft.amount_due,
        "issued_at": draft.issued_at.isoformat(),
    }
