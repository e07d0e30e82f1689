"""Invoices, invoice lines, payments and credit notes on the wire (invoice.proto)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from fractions import Fraction

from billing.domain.decimals import format_decimal
from billing.domain.invoice_records import (
    CreditNote,
    CreditRequest,
    InvoiceStatus,
    IssuedInvoice,
    Payment,
    PaymentOutcome,
)
from billing.domain.invoices import InvoiceDraft
from billing.domain.lines import InvoiceLine, InvoiceLineKind
from billing.domain.money import EXACT
from billing.v1 import invoice_pb2 as pb
from billing.v1 import rating_pb2
from rating.api.converters.common import Checker, convert, optional_timestamp, timestamp_from_datetime
from rating.api.converters.quotes import write_tier
from rating.api.converters.resources import format_name, format_optional_name

STATUSES = {
    pb.INVOICE_STATUS_DRAFT: InvoiceStatus.DRAFT,
    pb.INVOICE_STATUS_OPEN: InvoiceStatus.OPEN,
    pb.INVOICE_STATUS_PAID: InvoiceStatus.PAID,
    pb.INVOICE_STATUS_VOID: InvoiceStatus.VOID,
    pb.INVOICE_STATUS_UNCOLLECTIBLE: InvoiceStatus.UNCOLLECTIBLE,
}
STATUSES_OUT = {member: number for number, member in STATUSES.items()}

_OUTCOMES = {
    pb.PAYMENT_OUTCOME_SUCCEEDED: PaymentOutcome.SUCCEEDED,
    pb.PAYMENT_OUTCOME_FAILED: PaymentOutcome.FAILED,
}
_OUTCOMES_OUT = {member: number for number, member in _OUTCOMES.items()}

_LINE_TYPES = {
    InvoiceLineKind.FEE: pb.INVOICE_LINE_TYPE_FEE,
    InvoiceLineKind.USAGE: pb.INVOICE_LINE_TYPE_USAGE,
    InvoiceLineKind.PRORATION_CREDIT: pb.INVOICE_LINE_TYPE_PRORATION_CREDIT,
    InvoiceLineKind.PRORATION_DEBIT: pb.INVOICE_LINE_TYPE_PRORATION_DEBIT,
    InvoiceLineKind.USAGE_ADJUSTMENT: pb.INVOICE_LINE_TYPE_USAGE_ADJUSTMENT,
}

# The item key's prefix (billing.domain.subscriptions.Item.key) says what the line prices.
_ITEM_KINDS = {
    "seat": rating_pb2.LINE_KIND_SEAT,
    "add_on": rating_pb2.LINE_KIND_ADD_ON,
    "included": rating_pb2.LINE_KIND_ADD_ON,
    "usage": rating_pb2.LINE_KIND_USAGE,
    "price": rating_pb2.LINE_KIND_ITEM,
}

_REASONS = {
    "first": pb.INVOICE_REASON_SUBSCRIPTION_CREATE,
    "closing": pb.INVOICE_REASON_SUBSCRIPTION_CYCLE,
    "proration": pb.INVOICE_REASON_SUBSCRIPTION_UPDATE,
    "final": pb.INVOICE_REASON_SUBSCRIPTION_CANCEL,
}

CREDIT_REASONS = {
    pb.CREDIT_NOTE_REASON_UNSPECIFIED: "",
    pb.CREDIT_NOTE_REASON_DUPLICATE: "duplicate",
    pb.CREDIT_NOTE_REASON_FRAUDULENT: "fraudulent",
    pb.CREDIT_NOTE_REASON_ORDER_CHANGE: "order_change",
    pb.CREDIT_NOTE_REASON_PRODUCT_UNSATISFACTORY: "product_unsatisfactory",
}
_CREDIT_REASONS_OUT = {reason: number for number, reason in CREDIT_REASONS.items()}

MAX_MEMO_LENGTH = 500
_MAX_PROVIDER_TEXT = 200


# --- outbound -----------------------------------------------------------------------------


def exact_text(value: Fraction) -> str:
    """A decimal when one is exact (the denominator has no prime factor but 2 and 5), else "p/q"."""
    denominator = value.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    if denominator != 1:
        return f"{value.numerator}/{value.denominator}"
    return format_decimal(EXACT.divide(Decimal(value.numerator), Decimal(value.denominator)))


def line_to_proto(line: InvoiceLine, line_id: str = "") -> pb.InvoiceLine:
    out = pb.InvoiceLine(
        id=line_id,
        type=_LINE_TYPES[line.kind],
        kind=_ITEM_KINDS.get(line.item_key.split(":", 1)[0], rating_pb2.LINE_KIND_UNSPECIFIED),
        description=line.description,
        price=format_optional_name("prices", line.price_id),
        product=format_optional_name("products", line.product_id),
        item=line.item_key,
        period_start_time=timestamp_from_datetime(line.period.start),
        period_end_time=timestamp_from_datetime(line.period.end),
        quantity=format_decimal(line.quantity),
        exact_amount=exact_text(line.unrounded_amount),
        amount=line.amount,
        tax=line.tax,
        total=line.total,
        included=line.included,
    )
    if line.unit_amount is not None:
        out.unit_amount = format_decimal(line.unit_amount)
    for tier in line.tiers:
        write_tier(out.tiers.add(), tier)
    if line.proration_factor is not None:
        out.proration_factor.numerator = line.proration_factor.numerator
        out.proration_factor.denominator = line.proration_factor.denominator
    for discount in line.discounts:
        out.discounts.add(coupon=format_name("coupons", discount.coupon_id), amount=discount.amount)
    if line.tax_rate is not None:
        out.tax_rate = line.tax_rate.id
    return out


def lines_to_proto(lines: Iterable[InvoiceLine]) -> list[pb.InvoiceLine]:
    return [line_to_proto(line) for line in lines]


def _tax_amounts(lines: Sequence[InvoiceLine]) -> list[pb.TaxAmount]:
    amounts: dict[str, pb.TaxAmount] = {}
    for line in lines:
        rate = line.tax_rate
        if rate is None:
            continue
        entry = amounts.get(rate.id)
        if entry is None:
            entry = amounts[rate.id] = pb.TaxAmount(
                tax_rate=rate.id, display_name=rate.display_name, percentage=format_decimal(rate.percentage)
            )
        entry.taxable_amount += line.net
        entry.amount += line.tax
    return list(amounts.values())


def payment_to_proto(payment: Payment) -> pb.Payment:
    return pb.Payment(
        outcome=_OUTCOMES_OUT[payment.outcome],
        amount=payment.amount,
        provider=payment.provider,
        provider_reference=payment.provider_reference,
        failure_message=payment.failure_message,
        payment_time=timestamp_from_datetime(payment.paid_at),
    )


def invoice_to_proto(invoice: IssuedInvoice) -> pb.Invoice:
    lines = [n.line for n in invoice.lines]
    return pb.Invoice(
        name=format_name("invoices", invoice.id),
        customer=format_name("customers", invoice.customer_id),
        subscription=format_optional_name("subscriptions", invoice.subscription_id),
        number=invoice.number or "",
        status=STATUSES_OUT[invoice.status],
        reason=_REASONS.get(invoice.kind, pb.INVOICE_REASON_UNSPECIFIED),
        currency=invoice.currency,
        period_start_time=optional_timestamp(invoice.period_start),
        period_end_time=optional_timestamp(invoice.period_end),
        lines=[line_to_proto(n.line, str(n.position)) for n in invoice.lines],
        tax_amounts=_tax_amounts(lines),
        subtotal=invoice.subtotal,
        discount_total=invoice.discount,
        tax_total=invoice.tax,
        total=invoice.total,
        credit_applied=invoice.credit_applied,
        amount_due=invoice.amount_due,
        amount_paid=invoice.amount_paid,
        amount_credited=invoice.amount_credited,
        amount_remaining=invoice.amount_remaining,
        payments=[payment_to_proto(p) for p in invoice.payments],
        create_time=optional_timestamp(invoice.created_at),
        finalize_time=optional_timestamp(invoice.finalized_at),
        status_time=optional_timestamp(invoice.status_changed_at),
    )


def draft_to_proto(draft: InvoiceDraft) -> pb.Invoice:
    """A previewed invoice: no name, no number, never stored."""
    period = draft.fee_period or draft.usage_period
    return pb.Invoice(
        customer=format_name("customers", draft.customer_id),
        subscription=format_name("subscriptions", draft.subscription_id),
        status=pb.INVOICE_STATUS_DRAFT,
        reason=pb.INVOICE_REASON_SUBSCRIPTION_CYCLE,
        currency=draft.currency,
        period_start_time=None if period is None else timestamp_from_datetime(period.start),
        period_end_time=None if period is None else timestamp_from_datetime(period.end),
        lines=lines_to_proto(draft.lines),
        tax_amounts=_tax_amounts(draft.lines),
        subtotal=draft.subtotal,
        discount_total=draft.discount,
        tax_total=draft.tax,
        total=draft.total,
        credit_applied=draft.credit_applied,
        amount_due=draft.amount_due,
        amount_remaining=draft.amount_due,
    )


def credit_note_to_proto(note: CreditNote) -> pb.CreditNote:
    return pb.CreditNote(
        name=format_name("creditNotes", note.id),
        invoice=format_name("invoices", note.invoice_id),
        number=note.number,
        reason=_CREDIT_REASONS_OUT.get(note.reason, pb.CREDIT_NOTE_REASON_UNSPECIFIED),
        memo=note.memo,
        lines=[pb.CreditNoteLine(line=str(line.position), amount=line.amount) for line in note.lines],
        total=note.total,
        credit_balance_amount=note.credit_balance_amount,
        create_time=optional_timestamp(note.created_at),
    )


# --- inbound ------------------------------------------------------------------------------


def optional_status(value: pb.InvoiceStatus.ValueType, name: str = "status") -> InvoiceStatus | None:
    return None if value == 0 else convert("", lambda c: c.enum(value, STATUSES, name))


def payment_from_proto(msg: pb.RecordInvoicePaymentRequest, now: datetime) -> Payment:
    """The reported payment; its amount is set by the use case (a success pays what remains)."""
    return convert("", lambda c: _payment(msg, c, now))


def _payment(msg: pb.RecordInvoicePaymentRequest, c: Checker, now: datetime) -> Payment | None:
    outcome = c.enum(msg.outcome, _OUTCOMES, "outcome")
    for name in ("provider", "provider_reference"):
        value = c.required(getattr(msg, name), name)
        if len(value) > _MAX_PROVIDER_TEXT:
            c.add(name, f"at most {_MAX_PROVIDER_TEXT} characters")
    if len(msg.failure_message) > MAX_MEMO_LENGTH:
        c.add("failure_message", f"at most {MAX_MEMO_LENGTH} characters")
    if msg.failure_message and outcome is PaymentOutcome.SUCCEEDED:
        c.add("failure_message", "only a FAILED payment has one")
    paid_at = c.instant(msg, "payment_time") or now
    if outcome is None:
        return None
    return Payment(outcome, 0, msg.provider, msg.provider_reference, paid_at, msg.failure_message)


def credit_requests_from_proto(msg: pb.CreateCreditNoteRequest) -> tuple[list[CreditRequest], str, str]:
    """The lines to credit, the reason and the memo."""
    return convert("", lambda c: _credit_request(msg, c))


def _credit_request(msg: pb.CreateCreditNoteRequest, c: Checker) -> tuple[list[CreditRequest], str, str]:
    requests: list[CreditRequest] = []
    for index, line in enumerate(msg.lines):
        at = c.at(f"lines[{index}]")
        position = _line_position(line.line, at)
        if line.amount < 0:
            at.add("amount", "must not be negative")
        if position is not None:
            requests.append(CreditRequest(position, line.amount or None))
    reason = CREDIT_REASONS.get(msg.reason)
    if reason is None:
        c.add("reason", f"unknown value {msg.reason}")
    if len(msg.memo) > MAX_MEMO_LENGTH:
        c.add("memo", f"at most {MAX_MEMO_LENGTH} characters")
    return requests, reason or "", msg.memo


def _line_position(text: str, c: Checker) -> int | None:
    if not text:
        c.add("line", "is required")
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        c.add("line", f"must be a line id of the invoice, got {text[:40]!r}")
        return None
    return int(text)
