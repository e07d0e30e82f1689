"""Issued invoices after the close: their status, payments and credit notes (DESIGN.md §6).

The close (``billing.domain.invoices``) builds an invoice; this module owns what happens to it
afterwards. Units: int minor units of the invoice's currency.

- Status moves ``draft -> open -> paid | void | uncollectible``, and ``uncollectible -> paid |
  void`` (a written-off invoice may still be paid, or voided; Stripe allows both). Anything else
  is ``FailedPrecondition``. A draft belongs to the invoicer until it finalizes it.
- A succeeded payment pays what remains; a failed one is recorded and changes nothing.
- A credit note credits lines of a finalized (open, paid or uncollectible) invoice, each at most
  its total (net + tax) less what earlier notes credited. The credit first lowers what remains
  to be paid; the rest (the invoice was paid, or paid from the credit balance) goes to the
  customer's credit balance. An open invoice credited down to nothing remaining is paid.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from billing.domain.errors import FailedPrecondition, Violations
from billing.domain.lines import InvoiceLine


class InvoiceStatus(enum.Enum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


_NEXT: Mapping[InvoiceStatus, frozenset[InvoiceStatus]] = {
    InvoiceStatus.OPEN: frozenset({InvoiceStatus.PAID, InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE}),
    InvoiceStatus.UNCOLLECTIBLE: frozenset({InvoiceStatus.PAID, InvoiceStatus.VOID}),
}

_CREDITABLE = frozenset({InvoiceStatus.OPEN, InvoiceStatus.PAID, InvoiceStatus.UNCOLLECTIBLE})


class PaymentOutcome(enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Payment:
    outcome: PaymentOutcome
    amount: int
    provider: str
    provider_reference: str
    paid_at: datetime
    failure_message: str = ""
    id: str = ""


@dataclass(frozen=True, slots=True)
class CreditNoteLine:
    """``amount`` minor units of the invoice line at ``position`` (its total, tax included)."""

    position: int
    amount: int


@dataclass(frozen=True, slots=True)
class CreditNote:
    id: str
    invoice_id: str
    number: str
    lines: tuple[CreditNoteLine, ...]
    total: int
    credit_balance_amount: int
    reason: str = ""
    memo: str = ""
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class NumberedLine:
    """An invoice line and its position on the invoice (its id in the API)."""

    position: int
    line: InvoiceLine


@dataclass(frozen=True)
class IssuedInvoice:
    """An invoice as stored: the close's figures plus what happened to it since.

    ``kind``: ``first``, ``closing``, ``final``, ``proration`` or ``manual`` (the close's reason).
    """

    id: str
    customer_id: str
    subscription_id: str | None
    kind: str
    status: InvoiceStatus
    currency: str
    number: str | None
    period_start: datetime | None
    period_end: datetime | None
    lines: tuple[NumberedLine, ...]
    subtotal: int
    discount: int
    tax: int
    total: int
    credit_applied: int
    amount_due: int
    payments: tuple[Payment, ...] = ()
    credit_notes: tuple[CreditNote, ...] = ()
    created_at: datetime | None = None
    finalized_at: datetime | None = None
    status_changed_at: datetime | None = None
    test_clock_id: str | None = None

    @property
    def amount_paid(self) -> int:
        return sum(p.amount for p in self.payments if p.outcome is PaymentOutcome.SUCCEEDED)

    @property
    def amount_credited(self) -> int:
        """What credit notes took off the amount due (the rest of them went to the balance)."""
        return sum(n.total - n.credit_balance_amount for n in self.credit_notes)

    @property
    def amount_remaining(self) -> int:
        return max(0, self.amount_due - self.amount_paid - self.amount_credited)

    def credited(self, position: int) -> int:
        return sum(cl.amount for n in self.credit_notes for cl in n.lines if cl.position == position)


def check_transition(invoice: IssuedInvoice, to: InvoiceStatus) -> None:
    """Raise FailedPrecondition unless ``invoice`` may move to ``to``."""
    if to not in _NEXT.get(invoice.status, frozenset()):
        raise FailedPrecondition(
            f"invoice {invoice.id!r} is {invoice.status.value}: it cannot become {to.value}"
        )


def record_payment(invoice: IssuedInvoice, payment: Payment) -> tuple[Payment, InvoiceStatus]:
    """The payment as recorded (a success pays what remains) and the invoice's status after it."""
    if invoice.status not in _NEXT or invoice.status is InvoiceStatus.PAID:
        raise FailedPrecondition(f"invoice {invoice.id!r} is {invoice.status.value}: it takes no payment")
    if payment.outcome is PaymentOutcome.FAILED:
        return _with_amount(payment, invoice.amount_remaining), invoice.status
    check_transition(invoice, InvoiceStatus.PAID)
    return _with_amount(payment, invoice.amount_remaining), InvoiceStatus.PAID


def _with_amount(payment: Payment, amount: int) -> Payment:
    return Payment(
        payment.outcome,
        amount,
        payment.provider,
        payment.provider_reference,
        payment.paid_at,
        payment.failure_message,
        payment.id,
    )


@dataclass(frozen=True, slots=True)
class CreditRequest:
    """Credit ``amount`` of the line at ``position``; None credits all that is left of it."""

    position: int
    amount: int | None = None


@dataclass(frozen=True)
class CreditPlan:
    """What a credit note does: its lines, its total, the part for the credit balance, and the
    invoice's status after it."""

    lines: tuple[CreditNoteLine, ...]
    total: int
    credit_balance_amount: int
    status_after: InvoiceStatus


def plan_credit_note(invoice: IssuedInvoice, requests: Sequence[CreditRequest]) -> CreditPlan:
    """Check and size a credit note; an empty ``requests`` credits everything left on the invoice.

    Raises FailedPrecondition for an invoice that is not finalized or is void, or when nothing is
    left to credit; InvalidArgument (field ``lines[i]...``) for an unknown line or an amount over
    what is left of it.
    """
    if invoice.status not in _CREDITABLE:
        raise FailedPrecondition(
            f"invoice {invoice.id!r} is {invoice.status.value}: only finalized invoices take credit notes"
        )
    by_position = {n.position: n for n in invoice.lines}
    wanted = list(requests) or [CreditRequest(n.position) for n in invoice.lines]
    errors = Violations()
    lines: list[CreditNoteLine] = []
    seen: set[int] = set()
    for index, request in enumerate(wanted):
        field_name = f"lines[{index}]"
        numbered = by_position.get(request.position)
        if numbered is None:
            errors.add(f"{field_name}.line", f"invoice {invoice.id!r} has no line {request.position}")
            continue
        if request.position in seen:
            errors.add(f"{field_name}.line", "is credited twice in this note")
            continue
        seen.add(request.position)
        left = max(0, numbered.line.total - invoice.credited(request.position))
        amount = left if request.amount is None else request.amount
        if request.amount is not None and not 0 < request.amount <= left:
            errors.add(f"{field_name}.amount", f"must be between 1 and {left}, what is left of the line")
        elif amount > 0:
            lines.append(CreditNoteLine(request.position, amount))
        elif requests:
            errors.add(f"{field_name}.line", "nothing is left to credit on this line")
    errors.raise_if_any()
    if not lines:
        raise FailedPrecondition(f"nothing is left to credit on invoice {invoice.id!r}")
    total = sum(line.amount for line in lines)
    off_due = min(total, invoice.amount_remaining)
    status = invoice.status
    if status is InvoiceStatus.OPEN and off_due == invoice.amount_remaining:
        status = InvoiceStatus.PAID
    return CreditPlan(tuple(lines), total, total - off_due, status)
