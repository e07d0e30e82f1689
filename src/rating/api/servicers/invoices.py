"""InvoiceService."""

from __future__ import annotations

from typing import Any

from billing.domain.invoice_records import InvoiceStatus
from billing.v1 import invoice_pb2 as pb
from rating.api.converters import invoices as convert
from rating.api.converters.common import convert as checked
from rating.api.converters.resources import parse_name
from rating.api.errors import translate_errors
from rating.api.pagination import next_token, page_of
from rating.api.servicers._support import Dependencies, mutate, read
from rating.usecases import invoices, previews
from rating.usecases.billing_ports import BillingUnitOfWork

Context = Any


class InvoiceServicer:
    def __init__(self, deps: Dependencies) -> None:
        self.deps = deps

    @translate_errors
    async def GetInvoice(self, request: pb.GetInvoiceRequest, context: Context) -> pb.GetInvoiceResponse:
        invoice_id = parse_name(request.name, "invoices", "name")

        async def query(uow: BillingUnitOfWork) -> pb.GetInvoiceResponse:
            return pb.GetInvoiceResponse(invoice=convert.invoice_to_proto(await uow.invoices.get(invoice_id)))

        return await read(self.deps, query)

    @translate_errors
    async def ListInvoices(
        self, request: pb.ListInvoicesRequest, context: Context
    ) -> pb.ListInvoicesResponse:
        after, size = page_of(request)
        customer_id, subscription_id, period_from, period_to = checked(
            "",
            lambda c: (
                c.optional_name(request.customer, "customers", "customer"),
                c.optional_name(request.subscription, "subscriptions", "subscription"),
                c.instant(request, "period_start_time"),
                c.instant(request, "period_end_time"),
            ),
        )
        status = convert.optional_status(request.status)

        async def query(uow: BillingUnitOfWork) -> pb.ListInvoicesResponse:
            found = await uow.invoices.list(
                customer_id=customer_id,
                subscription_id=subscription_id,
                status=status,
                period_from=period_from,
                period_to=period_to,
                after=after,
                limit=size + 1,
            )
            return pb.ListInvoicesResponse(
                invoices=[convert.invoice_to_proto(i) for i in found[:size]],
                next_page_token=next_token(found, size),
            )

        return await read(self.deps, query)

    @translate_errors
    async def PreviewInvoice(
        self, request: pb.PreviewInvoiceRequest, context: Context
    ) -> pb.PreviewInvoiceResponse:
        subscription_id = parse_name(request.subscription, "subscriptions", "subscription")
        catalog, now = self.deps.catalog.current(), self.deps.clock()

        async def query(uow: BillingUnitOfWork) -> pb.PreviewInvoiceResponse:
            draft = await previews.preview_invoice(uow, subscription_id, catalog, now)
            return pb.PreviewInvoiceResponse(invoice=convert.draft_to_proto(draft))

        return await read(self.deps, query)

    @translate_errors
    async def VoidInvoice(self, request: pb.VoidInvoiceRequest, context: Context) -> pb.VoidInvoiceResponse:
        invoice_id = parse_name(request.name, "invoices", "name")
        now = self.deps.clock()

        async def build(uow: BillingUnitOfWork) -> pb.VoidInvoiceResponse:
            invoice = await invoices.change_status(uow, invoice_id, InvoiceStatus.VOID, now)
            return pb.VoidInvoiceResponse(invoice=convert.invoice_to_proto(invoice))

        return await mutate(self.deps, "VoidInvoice", request, pb.VoidInvoiceResponse, build)

    @translate_errors
    async def MarkInvoiceUncollectible(
        self, request: pb.MarkInvoiceUncollectibleRequest, context: Context
    ) -> pb.MarkInvoiceUncollectibleResponse:
        invoice_id = parse_name(request.name, "invoices", "name")
        now = self.deps.clock()

        async def build(uow: BillingUnitOfWork) -> pb.MarkInvoiceUncollectibleResponse:
            invoice = await invoices.change_status(uow, invoice_id, InvoiceStatus.UNCOLLECTIBLE, now)
            return pb.MarkInvoiceUncollectibleResponse(invoice=convert.invoice_to_proto(invoice))

        return await mutate(
            self.deps, "MarkInvoiceUncollectible", request, pb.MarkInvoiceUncollectibleResponse, build
        )

    @translate_errors
    async def RecordInvoicePayment(
        self, request: pb.RecordInvoicePaymentRequest, context: Context
    ) -> pb.RecordInvoicePaymentResponse:
        invoice_id = parse_name(request.name, "invoices", "name")
        now = self.deps.clock()
        payment = convert.payment_from_proto(request, now)

        async def build(uow: BillingUnitOfWork) -> pb.RecordInvoicePaymentResponse:
            invoice, recorded = await invoices.pay(uow, invoice_id, payment, now)
            return pb.RecordInvoicePaymentResponse(
                invoice=convert.invoice_to_proto(invoice), payment=convert.payment_to_proto(recorded)
            )

        return await mutate(
            self.deps, "RecordInvoicePayment", request, pb.RecordInvoicePaymentResponse, build
        )

    @translate_errors
    async def CreateCreditNote(
        self, request: pb.CreateCreditNoteRequest, context: Context
    ) -> pb.CreateCreditNoteResponse:
        invoice_id = parse_name(request.invoice, "invoices", "invoice")
        requests, reason, memo = convert.credit_requests_from_proto(request)
        now = self.deps.clock()

        async def build(uow: BillingUnitOfWork) -> pb.CreateCreditNoteResponse:
            invoice, note = await invoices.credit(
                uow, invoice_id, requests, reason=reason, memo=memo, now=now
            )
            return pb.CreateCreditNoteResponse(
                credit_note=convert.credit_note_to_proto(note), invoice=convert.invoice_to_proto(invoice)
            )

        return await mutate(self.deps, "CreateCreditNote", request, pb.CreateCreditNoteResponse, build)
