"""Invoice use cases after the close: reads, status changes, payments, credit notes (DESIGN.md §6).

Each mutation locks the invoice row first, so two concurrent calls on one invoice (a payment and
a void) are serialised and the second sees the first's result.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from billing.domain.invoice_records import (
    CreditNote,
    CreditRequest,
    InvoiceStatus,
    IssuedInvoice,
    Payment,
    check_transition,
    plan_credit_note,
    record_payment,
)
from rating.usecases.billing_ports import BillingUnitOfWork


async def change_status(
    uow: BillingUnitOfWork, invoice_id: str, to: InvoiceStatus, now: datetime
) -> IssuedInvoice:
    """Void or mark uncollectible; FailedPrecondition for a transition DESIGN.md §6 does not allow."""
    invoice = await uow.invoices.get(invoice_id, for_update=True)
    check_transition(invoice, to)
    await uow.invoices.set_status(invoice, to, await _now(uow, invoice, now))
    return await uow.invoices.get(invoice_id)


async def pay(
    uow: BillingUnitOfWork, invoice_id: str, payment: Payment, now: datetime
) -> tuple[IssuedInvoice, Payment]:
    invoice = await uow.invoices.get(invoice_id, for_update=True)
    recorded, status = record_payment(invoice, payment)
    stored = await uow.invoices.add_payment(invoice, recorded)
    if status is not invoice.status:
        await uow.invoices.set_status(invoice, status, await _now(uow, invoice, now))
    return await uow.invoices.get(invoice_id), stored


async def credit(
    uow: BillingUnitOfWork,
    invoice_id: str,
    requests: Sequence[CreditRequest],
    *,
    reason: str,
    memo: str,
    now: datetime,
) -> tuple[IssuedInvoice, CreditNote]:
    invoice = await uow.invoices.get(invoice_id, for_update=True)
    plan = plan_credit_note(invoice, requests)
    note = await uow.invoices.add_credit_note(
        invoice,
        CreditNote(
            id=uow.new_id("cn"),
            invoice_id=invoice.id,
            number="",
            lines=plan.lines,
            total=plan.total,
            credit_balance_amount=plan.credit_balance_amount,
            reason=reason,
            memo=memo,
        ),
    )
    if plan.status_after is not invoice.status:
        await uow.invoices.set_status(invoice, plan.status_after, await _now(uow, invoice, now))
    return await uow.invoices.get(invoice_id), note


async def _now(uow: BillingUnitOfWork, invoice: IssuedInvoice, now: datetime) -> datetime:
    """The customer's now: its test clock's time, or the real one."""
    if invoice.test_clock_id is None:
        return now
    return await uow.test_clocks.time_of(invoice.test_clock_id)
