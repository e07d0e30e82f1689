"""What may happen to an issued invoice: the status table, payments and credit notes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

import pytest

from billing.domain.errors import FailedPrecondition, InvalidArgument
from billing.domain.invoice_records import (
    CreditNote,
    CreditNoteLine,
    CreditRequest,
    InvoiceStatus,
    IssuedInvoice,
    NumberedLine,
    Payment,
    PaymentOutcome,
    check_transition,
    plan_credit_note,
    record_payment,
)
from billing.domain.lines import InvoiceLine, InvoiceLineKind
from billing.domain.periods import Period

AT = datetime(2030, 1, 1, tzinfo=UTC)
S = InvoiceStatus
ALLOWED = {
    (S.OPEN, S.PAID),
    (S.OPEN, S.VOID),
    (S.OPEN, S.UNCOLLECTIBLE),
    (S.UNCOLLECTIBLE, S.PAID),
    (S.UNCOLLECTIBLE, S.VOID),
}


def _line(amount: int, tax: int = 0) -> InvoiceLine:
    return InvoiceLine(
        kind=InvoiceLineKind.FEE,
        description="Seats",
        item_key="seat",
        price_id="price_1",
        product_id="prod_1",
        quantity=Decimal(1),
        unit_amount=None,
        period=Period(AT, AT),
        amount=amount,
        unrounded_amount=Fraction(amount),
        tax=tax,
    )


def _invoice(
    status: InvoiceStatus = S.OPEN, *, credit_applied: int = 0, notes: tuple[CreditNote, ...] = ()
) -> IssuedInvoice:
    lines = (NumberedLine(0, _line(6000, 1500)), NumberedLine(1, _line(-1000, -250)))
    total = sum(n.line.total for n in lines)
    return IssuedInvoice(
        id="in_1",
        customer_id="cus_1",
        subscription_id="sub_1",
        kind="closing",
        status=status,
        currency="USD",
        number="INV-000001",
        period_start=AT,
        period_end=AT,
        lines=lines,
        subtotal=5000,
        discount=0,
        tax=1250,
        total=total,
        credit_applied=credit_applied,
        amount_due=total - credit_applied,
        credit_notes=notes,
    )


@pytest.mark.parametrize("source", list(S))
@pytest.mark.parametrize("target", list(S))
def test_only_the_transitions_of_design_section_6_are_allowed(source: S, target: S) -> None:
    invoice = _invoice(source)
    if (source, target) in ALLOWED:
        check_transition(invoice, target)
    else:
        with pytest.raises(FailedPrecondition):
            check_transition(invoice, target)


def test_a_success_pays_what_remains_and_a_failure_changes_nothing() -> None:
    invoice = _invoice(credit_applied=250)
    failed, status = record_payment(
        invoice, Payment(PaymentOutcome.FAILED, 0, "stripe", "ch_1", AT, "declined")
    )
    assert (failed.amount, status) == (6000, S.OPEN)
    paid, status = record_payment(invoice, Payment(PaymentOutcome.SUCCEEDED, 0, "stripe", "ch_2", AT))
    assert (paid.amount, status) == (6000, S.PAID)
    for closed in (S.DRAFT, S.PAID, S.VOID):
        with pytest.raises(FailedPrecondition):
            record_payment(_invoice(closed), Payment(PaymentOutcome.FAILED, 0, "stripe", "ch_3", AT))


def test_a_credit_lowers_what_remains_first_and_the_rest_goes_to_the_balance() -> None:
    invoice = _invoice(credit_applied=1000)  # total 6250, 1000 paid from the balance, 5250 due
    plan = plan_credit_note(invoice, [CreditRequest(0, 6000)])
    assert (plan.total, plan.credit_balance_amount, plan.status_after) == (6000, 750, S.PAID)
    partial = plan_credit_note(invoice, [CreditRequest(0, 1000)])
    assert (partial.credit_balance_amount, partial.status_after) == (0, S.OPEN)


def test_a_line_is_never_credited_beyond_its_total_and_credit_lines_are_skipped() -> None:
    earlier = CreditNote("cn_1", "in_1", "INV-000001-CN1", (CreditNoteLine(0, 7000),), 7000, 0)
    invoice = _invoice(notes=(earlier,))
    with pytest.raises(InvalidArgument) as caught:
        plan_credit_note(invoice, [CreditRequest(0, 501), CreditRequest(7)])
    assert {v.field for v in caught.value.violations} == {"lines[0].amount", "lines[1].line"}
    assert plan_credit_note(invoice, []).lines == (CreditNoteLine(0, 500),)  # the negative line has nothing
    with pytest.raises(FailedPrecondition):
        plan_credit_note(
            _invoice(notes=(earlier, CreditNote("cn_2", "in_1", "x", (CreditNoteLine(0, 500),), 500, 0))), []
        )


@pytest.mark.parametrize("status", [S.DRAFT, S.VOID])
def test_drafts_and_void_invoices_take_no_credit_note(status: S) -> None:
    with pytest.raises(FailedPrecondition):
        plan_credit_note(_invoice(status), [])
