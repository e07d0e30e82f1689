"""Invoice states, payments and credit notes through the real server (DESIGN.md §6).

Each test gets a fresh customer whose first invoice (two seats: 60.00 USD) the invoicer closed
and finalized.
"""

from __future__ import annotations

import asyncpg
import grpc

from billing.v1 import invoice_pb2 as pb
from billing.v1 import invoice_pb2_grpc, subscription_pb2
from rating.server import RunningServer
from tests.integration.api.billing_world import SEAT, drain, world
from tests.integration.api.rpc import failure, field_violations, request_id
from tests.integration.api.test_quote_api import caught_up

Invoices = invoice_pb2_grpc.InvoiceServiceStub


async def _open_invoice(stubs: dict[str, object], server: RunningServer, url: str) -> pb.Invoice:
    w = await world(stubs["catalog"], stubs["customer"], stubs["clock"])  # type: ignore[arg-type]
    await caught_up(server, url)
    await stubs["subscription"].CreateSubscription(  # type: ignore[attr-defined]
        subscription_pb2.CreateSubscriptionRequest(
            subscription=subscription_pb2.Subscription(customer=w.customer, plan=w.plan, seats="2"),
            request_id=request_id(),
        )
    )
    await drain(url, server.cache.current)
    listed = await stubs["invoice"].ListInvoices(pb.ListInvoicesRequest(customer=w.customer))  # type: ignore[attr-defined]
    (invoice,) = listed.invoices
    assert (invoice.status, invoice.total, invoice.amount_remaining) == (
        pb.INVOICE_STATUS_OPEN,
        2 * SEAT,
        2 * SEAT,
    )
    assert invoice.number
    return invoice


def _stubs(**stubs: object) -> dict[str, object]:
    return {name.removesuffix("_stub"): stub for name, stub in stubs.items()}


async def test_an_open_invoice_goes_uncollectible_then_void_and_nothing_after(
    invoice_stub: Invoices,
    subscription_stub: object,
    catalog_stub: object,
    customer_stub: object,
    clock_stub: object,
    rating_server: RunningServer,
    migrated_url: str,
) -> None:
    stubs = _stubs(
        invoice_stub=invoice_stub,
        subscription_stub=subscription_stub,
        catalog_stub=catalog_stub,
        customer_stub=customer_stub,
        clock_stub=clock_stub,
    )
    invoice = await _open_invoice(stubs, rating_server, migrated_url)
    written_off = await invoice_stub.MarkInvoiceUncollectible(
        pb.MarkInvoiceUncollectibleRequest(name=invoice.name, request_id=request_id())
    )
    assert written_off.invoice.status == pb.INVOICE_STATUS_UNCOLLECTIBLE
    voided = await invoice_stub.VoidInvoice(pb.VoidInvoiceRequest(name=invoice.name, request_id=request_id()))
    assert voided.invoice.status == pb.INVOICE_STATUS_VOID
    # Lines and totals never changed on the way.
    assert (list(voided.invoice.lines), voided.invoice.total) == (list(invoice.lines), invoice.total)
    for call in (
        invoice_stub.VoidInvoice(pb.VoidInvoiceRequest(name=invoice.name, request_id=request_id())),
        invoice_stub.MarkInvoiceUncollectible(
            pb.MarkInvoiceUncollectibleRequest(name=invoice.name, request_id=request_id())
        ),
        invoice_stub.RecordInvoicePayment(
            pb.RecordInvoicePaymentRequest(
                name=invoice.name,
                outcome=pb.PAYMENT_OUTCOME_SUCCEEDED,
                provider="stripe",
                provider_reference=request_id(),
                request_id=request_id(),
            )
        ),
        invoice_stub.CreateCreditNote(
            pb.CreateCreditNoteRequest(invoice=invoice.name, request_id=request_id())
        ),
    ):
        error = await failure(call)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    connection = await asyncpg.connect(migrated_url)
    try:
        events = await connection.fetch(
            "SELECT type FROM outbox_events WHERE aggregate_id = $1 ORDER BY created_at",
            invoice.name.split("/")[1],
        )
    finally:
        await connection.close()
    assert [e["type"] for e in events][-2:] == ["invoice.uncollectible", "invoice.void"]


async def test_a_failed_payment_changes_nothing_and_a_success_pays_what_remains_once(
    invoice_stub: Invoices,
    subscription_stub: object,
    catalog_stub: object,
    customer_stub: object,
    clock_stub: object,
    rating_server: RunningServer,
    migrated_url: str,
) -> None:
    stubs = _stubs(
        invoice_stub=invoice_stub,
        subscription_stub=subscription_stub,
        catalog_stub=catalog_stub,
        customer_stub=customer_stub,
        clock_stub=clock_stub,
    )
    invoice = await _open_invoice(stubs, rating_server, migrated_url)
    failed = await invoice_stub.RecordInvoicePayment(
        pb.RecordInvoicePaymentRequest(
            name=invoice.name,
            outcome=pb.PAYMENT_OUTCOME_FAILED,
            provider="stripe",
            provider_reference="ch_declined",
            failure_message="card_declined",
            request_id=request_id(),
        )
    )
    assert (failed.invoice.status, failed.invoice.amount_paid) == (pb.INVOICE_STATUS_OPEN, 0)
    reference = request_id()
    paid_request = pb.RecordInvoicePaymentRequest(
        name=invoice.name,
        outcome=pb.PAYMENT_OUTCOME_SUCCEEDED,
        provider="stripe",
        provider_reference=reference,
        request_id=request_id(),
    )
    paid = await invoice_stub.RecordInvoicePayment(paid_request)
    assert (paid.invoice.status, paid.invoice.amount_paid, paid.invoice.amount_remaining) == (
        pb.INVOICE_STATUS_PAID,
        2 * SEAT,
        0,
    )
    assert paid.payment.amount == 2 * SEAT
    # A retry is answered again; a second payment of a paid invoice is refused.
    assert await invoice_stub.RecordInvoicePayment(paid_request) == paid
    assert len(paid.invoice.payments) == 2
    error = await failure(
        invoice_stub.RecordInvoicePayment(
            pb.RecordInvoicePaymentRequest(
                name=invoice.name,
                outcome=pb.PAYMENT_OUTCOME_SUCCEEDED,
                provider="stripe",
                provider_reference=request_id(),
                request_id=request_id(),
            )
        )
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_credit_notes_credit_by_line_up_to_what_is_left_then_pay_or_fill_the_balance(
    invoice_stub: Invoices,
    subscription_stub: object,
    catalog_stub: object,
    customer_stub: object,
    clock_stub: object,
    rating_server: RunningServer,
    migrated_url: str,
) -> None:
    stubs = _stubs(
        invoice_stub=invoice_stub,
        subscription_stub=subscription_stub,
        catalog_stub=catalog_stub,
        customer_stub=customer_stub,
        clock_stub=clock_stub,
    )
    invoice = await _open_invoice(stubs, rating_server, migrated_url)
    line = invoice.lines[0].id
    partial = await invoice_stub.CreateCreditNote(
        pb.CreateCreditNoteRequest(
            invoice=invoice.name,
            lines=[pb.CreditNoteLine(line=line, amount=1000)],
            reason=pb.CREDIT_NOTE_REASON_ORDER_CHANGE,
            request_id=request_id(),
        )
    )
    assert partial.credit_note.number == f"{invoice.number}-CN1"
    assert (partial.credit_note.total, partial.credit_note.credit_balance_amount) == (1000, 0)
    assert (partial.invoice.status, partial.invoice.amount_remaining) == (pb.INVOICE_STATUS_OPEN, 5000)
    error = await failure(
        invoice_stub.CreateCreditNote(
            pb.CreateCreditNoteRequest(
                invoice=invoice.name,
                lines=[pb.CreditNoteLine(line=line, amount=5001)],
                request_id=request_id(),
            )
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "lines[0].amount" in field_violations(error)
    paid = await invoice_stub.RecordInvoicePayment(
        pb.RecordInvoicePaymentRequest(
            name=invoice.name,
            outcome=pb.PAYMENT_OUTCOME_SUCCEEDED,
            provider="stripe",
            provider_reference=request_id(),
            request_id=request_id(),
        )
    )
    assert paid.payment.amount == 5000
    # The rest of the line, after payment, goes to the customer's credit balance.
    rest = await invoice_stub.CreateCreditNote(
        pb.CreateCreditNoteRequest(invoice=invoice.name, request_id=request_id())
    )
    assert (rest.credit_note.total, rest.credit_note.credit_balance_amount) == (5000, 5000)
    assert rest.credit_note.number == f"{invoice.number}-CN2"
    connection = await asyncpg.connect(migrated_url)
    try:
        balance = await connection.fetchval(
            "SELECT balance FROM customer_balances WHERE customer_id = $1", invoice.customer.split("/")[1]
        )
    finally:
        await connection.close()
    assert balance == 5000
    error = await failure(
        invoice_stub.CreateCreditNote(
            pb.CreateCreditNoteRequest(invoice=invoice.name, request_id=request_id())
        )
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_bad_invoice_requests_are_refused_by_field(invoice_stub: Invoices) -> None:
    error = await failure(
        invoice_stub.RecordInvoicePayment(
            pb.RecordInvoicePaymentRequest(name="invoices/in_x", request_id=request_id())
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"outcome", "provider", "provider_reference"}
    error = await failure(invoice_stub.GetInvoice(pb.GetInvoiceRequest(name="invoices/in_missing")))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    error = await failure(
        invoice_stub.CreateCreditNote(
            pb.CreateCreditNoteRequest(
                invoice="invoices/in_x", lines=[pb.CreditNoteLine(line="first")], request_id=request_id()
            )
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "lines[0].line" in field_violations(error)
