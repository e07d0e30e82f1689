"""Test clock and invoice use cases against in-memory fakes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from billing.domain.errors import FailedPrecondition, NotFound
from billing.domain.invoice_records import CreditRequest, InvoiceStatus, Payment, PaymentOutcome
from billing.domain.test_clock import ClockBacklog, TestClock, TestClockStatus
from rating.usecases import invoices, test_clocks
from tests.unit.domain.test_invoice_records import _invoice
from tests.unit.usecases.billing_fakes import FakeBillingUnitOfWork

T0 = datetime(2030, 1, 1, tzinfo=UTC)
REAL_NOW = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture
async def uow() -> FakeBillingUnitOfWork:
    unit = FakeBillingUnitOfWork()
    await unit.__aenter__()
    return unit


async def test_a_clock_reports_advancing_while_periods_are_due_and_a_parked_one_as_a_failure(
    uow: FakeBillingUnitOfWork,
) -> None:
    created = await test_clocks.create_test_clock(uow, TestClock("", T0, "demo"))
    assert created.backlog.status is TestClockStatus.READY
    uow.test_clocks.backlogs[created.clock.id] = ClockBacklog(pending=2)
    moved = await test_clocks.advance_test_clock(uow, created.clock.id, T0 + timedelta(days=40))
    assert (moved.clock.frozen_time, moved.backlog.status) == (
        T0 + timedelta(days=40),
        TestClockStatus.ADVANCING,
    )
    uow.test_clocks.backlogs[created.clock.id] = ClockBacklog(pending=1, parked=1)
    fetched = await test_clocks.get_test_clock(uow, created.clock.id)
    assert fetched.backlog.status is TestClockStatus.INTERNAL_FAILURE
    with pytest.raises(FailedPrecondition):
        await test_clocks.advance_test_clock(uow, created.clock.id, T0)
    await test_clocks.delete_test_clock(uow, created.clock.id)
    with pytest.raises(NotFound):
        await test_clocks.get_test_clock(uow, created.clock.id)


async def test_status_changes_are_stamped_with_the_customers_clock_time(uow: FakeBillingUnitOfWork) -> None:
    clock = await test_clocks.create_test_clock(uow, TestClock("", T0))
    uow.invoices.invoices["in_1"] = dataclasses.replace(
        _invoice(InvoiceStatus.OPEN), test_clock_id=clock.clock.id
    )
    voided = await invoices.change_status(uow, "in_1", InvoiceStatus.VOID, REAL_NOW)
    assert (voided.status, voided.status_changed_at) == (InvoiceStatus.VOID, T0)
    assert uow.invoices.events == [("in_1", "invoice.void")]


async def test_paying_and_crediting_move_the_status_only_when_nothing_remains(
    uow: FakeBillingUnitOfWork,
) -> None:
    uow.invoices.invoices["in_1"] = _invoice(InvoiceStatus.OPEN)
    after, note = await invoices.credit(
        uow, "in_1", [CreditRequest(0, 250)], reason="", memo="", now=REAL_NOW
    )
    assert (after.status, after.amount_remaining, note.number) == (InvoiceStatus.OPEN, 6000, "INV-000001-CN1")
    paid, payment = await invoices.pay(
        uow, "in_1", Payment(PaymentOutcome.SUCCEEDED, 0, "stripe", "ch_1", REAL_NOW), REAL_NOW
    )
    assert (paid.status, payment.amount, paid.amount_remaining) == (InvoiceStatus.PAID, 6000, 0)
    with pytest.raises(FailedPrecondition):
        await invoices.change_status(uow, "in_1", InvoiceStatus.VOID, REAL_NOW)
