"""Invoices as the API reads and changes them: reads, status changes, payments, credit notes.

Every status change, payment and credit note writes its outbox event in the same transaction
(DESIGN.md §6). The database guards what code could get wrong: 0005's trigger refuses any
change to a finalized invoice but its status columns, and 0006's unique indexes refuse a
second successful payment of an invoice or of one provider reference.

Lines are read back from the domain line the invoicer stores beside the columns (the codec's
JSON), so a line reads back exactly as it was built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from billing.domain.errors import AlreadyExists, NotFound
from billing.domain.invoice_records import (
    CreditNote,
    CreditNoteLine,
    InvoiceStatus,
    IssuedInvoice,
    NumberedLine,
    Payment,
    PaymentOutcome,
)
from billing.domain.lines import InvoiceLine
from billing.store import codec, invoices
from billing.store._types import Connection
from billing.store.ids import new_id

# The column that records when an invoice entered each final status.
_STATUS_TIME = {
    InvoiceStatus.PAID: "paid_at",
    InvoiceStatus.VOID: "voided_at",
    InvoiceStatus.UNCOLLECTIBLE: "marked_uncollectible_at",
}


class InvoiceRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def get(self, invoice_id: str, *, for_update: bool = False) -> IssuedInvoice:
        lock = " FOR UPDATE" if for_update else ""
        row = await self._connection.fetchrow(f"SELECT * FROM invoices WHERE id = $1{lock}", invoice_id)
        if row is None:
            raise NotFound(f"invoice {invoice_id!r} not found")
        return (await _assemble(self._connection, [row]))[0]

    async def list(
        self,
        *,
        customer_id: str | None,
        subscription_id: str | None,
        status: InvoiceStatus | None,
        period_from: datetime | None,
        period_to: datetime | None,
        after: str | None,
        limit: int,
    ) -> list[IssuedInvoice]:
        rows = await self._connection.fetch(
            "SELECT * FROM invoices WHERE ($1::text IS NULL OR customer_id = $1) "
            "AND ($2::text IS NULL OR subscription_id = $2) AND ($3::text IS NULL OR status = $3) "
            "AND ($4::timestamptz IS NULL OR period_start >= $4) "
            "AND ($5::timestamptz IS NULL OR period_start < $5) "
            "AND ($6::text IS NULL OR id > $6) ORDER BY id LIMIT $7",
            customer_id,
            subscription_id,
            None if status is None else status.value,
            period_from,
            period_to,
            after,
            limit,
        )
        return await _assemble(self._connection, rows)

    async def set_status(self, invoice: IssuedInvoice, to: InvoiceStatus, at: datetime) -> None:
        await self._connection.execute(
            f"UPDATE invoices SET status = $2, status_changed_at = $3, {_STATUS_TIME[to]} = $3, "
            "updated_at = now() WHERE id = $1",
            invoice.id,
            to.value,
            at,
        )
        await self.outbox(f"invoice.{to.value}", invoice.id, {"invoice": invoice.id, "status": to.value})

    async def add_payment(self, invoice: IssuedInvoice, payment: Payment) -> Payment:
        payment_id = new_id("pay")
        try:
            await self._connection.execute(
                "INSERT INTO invoice_payments (id, invoice_id, outcome, amount, provider, "
                "provider_reference, failure_message, paid_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                payment_id,
                invoice.id,
                payment.outcome.value,
                payment.amount,
                payment.provider,
                payment.provider_reference,
                payment.failure_message,
                payment.paid_at,
            )
        except asyncpg.UniqueViolationError as error:
            if error.constraint_name == "invoice_payments_reference":
                raise AlreadyExists(
                    f"{payment.provider} payment {payment.provider_reference!r} already paid an invoice"
                ) from None
            raise AlreadyExists(f"invoice {invoice.id!r} is already paid") from None
        event = (
            "invoice.payment_succeeded"
            if payment.outcome is PaymentOutcome.SUCCEEDED
            else "invoice.payment_failed"
        )
        await self.outbox(
            event,
            invoice.id,
            {
                "invoice": invoice.id,
                "payment": payment_id,
                "amount": payment.amount,
                "provider": payment.provider,
            },
        )
        return Payment(
            payment.outcome,
            payment.amount,
            payment.provider,
            payment.provider_reference,
            payment.paid_at,
            payment.failure_message,
            payment_id,
        )

    async def add_credit_note(self, invoice: IssuedInvoice, note: CreditNote) -> CreditNote:
        """Store ``note`` (numbered ``{invoice number}-CN{n}``) and credit the customer's balance."""
        count = await self._connection.fetchval(
            "SELECT count(*) FROM credit_notes WHERE invoice_id = $1", invoice.id
        )
        number = f"{invoice.number}-CN{int(count or 0) + 1}"
        row = await self._connection.fetchrow(
            "INSERT INTO credit_notes (id, invoice_id, number, reason, memo, total, credit_balance_amount) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING created_at",
            note.id,
            invoice.id,
            number,
            note.reason,
            note.memo,
            note.total,
            note.credit_balance_amount,
        )
        assert row is not None
        await self._connection.executemany(
            "INSERT INTO credit_note_lines (credit_note_id, invoice_id, line_position, amount) "
            "VALUES ($1, $2, $3, $4)",
            [(note.id, invoice.id, line.position, line.amount) for line in note.lines],
        )
        if note.credit_balance_amount:
            await self._credit_balance(invoice, note)
        await self.outbox(
            "credit_note.created",
            invoice.id,
            {"invoice": invoice.id, "credit_note": note.id, "total": note.total},
        )
        return CreditNote(
            note.id,
            invoice.id,
            number,
            note.lines,
            note.total,
            note.credit_balance_amount,
            note.reason,
            note.memo,
            row["created_at"],
        )

    async def _credit_balance(self, invoice: IssuedInvoice, note: CreditNote) -> None:
        balance = await invoices.locked_balance(self._connection, invoice.customer_id, invoice.currency)
        await self._connection.execute(
            "UPDATE customer_balances SET balance = $2, updated_at = now() WHERE customer_id = $1",
            invoice.customer_id,
            balance + note.credit_balance_amount,
        )
        await self._connection.execute(
            "INSERT INTO customer_balance_transactions "
            "(id, customer_id, currency, amount, invoice_id, reason) VALUES ($1, $2, $3, $4, $5, $6)",
            new_id("cbtxn"),
            invoice.customer_id,
            invoice.currency,
            note.credit_balance_amount,
            invoice.id,
            f"credit note {note.id}",
        )

    async def outbox(self, event_type: str, aggregate_id: str, payload: dict[str, Any]) -> None:
        await invoices.emit(self._connection, event_type, aggregate_id, payload, None)


async def _assemble(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> list[IssuedInvoice]:
    if not rows:
        return []
    ids = [row["id"] for row in rows]
    lines = await connection.fetch(
        "SELECT invoice_id, position, line AS doc FROM invoice_lines "
        "WHERE invoice_id = ANY($1::text[]) ORDER BY invoice_id, position",
        ids,
    )
    payments = await connection.fetch(
        "SELECT * FROM invoice_payments WHERE invoice_id = ANY($1::text[]) ORDER BY created_at, id", ids
    )
    notes = await connection.fetch(
        "SELECT * FROM credit_notes WHERE invoice_id = ANY($1::text[]) ORDER BY created_at, id", ids
    )
    note_lines = await connection.fetch(
        "SELECT * FROM credit_note_lines WHERE invoice_id = ANY($1::text[]) "
        "ORDER BY credit_note_id, line_position",
        ids,
    )
    lines_of: dict[str, list[NumberedLine]] = {}
    for line in lines:
        lines_of.setdefault(line["invoice_id"], []).append(NumberedLine(line["position"], _line(line)))
    payments_of: dict[str, list[Payment]] = {}
    for p in payments:
        payments_of.setdefault(p["invoice_id"], []).append(_payment(p))
    credited: dict[str, list[CreditNoteLine]] = {}
    for cl in note_lines:
        credited.setdefault(cl["credit_note_id"], []).append(
            CreditNoteLine(cl["line_position"], cl["amount"])
        )
    notes_of: dict[str, list[CreditNote]] = {}
    for n in notes:
        notes_of.setdefault(n["invoice_id"], []).append(_credit_note(n, credited.get(n["id"], [])))
    return [
        _invoice(
            row, lines_of.get(row["id"], []), payments_of.get(row["id"], []), notes_of.get(row["id"], [])
        )
        for row in rows
    ]


def _line(row: Mapping[str, Any]) -> InvoiceLine:
    line: InvoiceLine = codec.from_json(InvoiceLine, row["doc"])
    return line


def _payment(row: Mapping[str, Any]) -> Payment:
    return Payment(
        PaymentOutcome(row["outcome"]),
        row["amount"],
        row["provider"],
        row["provider_reference"],
        row["paid_at"],
        row["failure_message"],
        row["id"],
    )


def _credit_note(row: Mapping[str, Any], lines: Sequence[CreditNoteLine]) -> CreditNote:
    return CreditNote(
        row["id"],
        row["invoice_id"],
        row["number"],
        tuple(lines),
        row["total"],
        row["credit_balance_amount"],
        row["reason"],
        row["memo"],
        row["created_at"],
    )


def _invoice(
    row: Mapping[str, Any],
    lines: Sequence[NumberedLine],
    payments: Sequence[Payment],
    notes: Sequence[CreditNote],
) -> IssuedInvoice:
    return IssuedInvoice(
        id=row["id"],
        customer_id=row["customer_id"],
        subscription_id=row["subscription_id"],
        kind=row["kind"],
        status=InvoiceStatus(row["status"]),
        currency=row["currency"],
        number=row["number"],
        period_start=row["period_start"],
        period_end=row["period_end"],
        lines=tuple(lines),
        subtotal=row["subtotal"],
        discount=row["discount"],
        tax=row["tax"],
        total=row["total"],
        credit_applied=row["credit_applied"],
        amount_due=row["amount_due"],
        payments=tuple(payments),
        credit_notes=tuple(notes),
        created_at=row["created_at"],
        finalized_at=row["finalized_at"],
        status_changed_at=row["status_changed_at"],
        test_clock_id=row["test_clock_id"],
    )
