"""Storage ports of the subscription, invoice and test-clock use cases (Protocols, faked in tests)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from billing.domain.invoice_records import CreditNote, InvoiceStatus, IssuedInvoice, Payment
from billing.domain.test_clock import ClockBacklog, TestClock
from rating.usecases.ports import UnitOfWork


class TestClockStore(Protocol):
    async def add(self, clock: TestClock) -> TestClock: ...

    async def get(self, clock_id: str, *, for_update: bool = False) -> TestClock:
        """The clock; NotFound for an unknown or deleted one."""
        ...

    async def list(self, *, after: str | None, limit: int) -> list[TestClock]: ...

    async def set_time(self, clock_id: str, frozen_time: datetime) -> TestClock: ...

    async def delete(self, clock_id: str) -> None: ...

    async def time_of(self, clock_id: str) -> datetime:
        """The clock's time, deleted or not: its customers live at it for good."""
        ...

    async def backlog(self, clock_id: str) -> ClockBacklog:
        """Subscriptions of the clock's customers with a period due by its time, not closed."""
        ...


class InvoiceStore(Protocol):
    async def get(self, invoice_id: str, *, for_update: bool = False) -> IssuedInvoice: ...

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
    ) -> list[IssuedInvoice]: ...

    async def set_status(self, invoice: IssuedInvoice, to: InvoiceStatus, at: datetime) -> None:
        """Move the invoice to ``to`` at ``at`` and write the outbox event, in this transaction."""
        ...

    async def add_payment(self, invoice: IssuedInvoice, payment: Payment) -> Payment: ...

    async def add_credit_note(self, invoice: IssuedInvoice, note: CreditNote) -> CreditNote:
        """Store the note, numbered, and add its balance part to the customer's credit balance."""
        ...


class BillingUnitOfWork(UnitOfWork, Protocol):
    """A unit of work that also reaches subscriptions, invoices and test clocks."""

    @property
    def test_clocks(self) -> TestClockStore: ...

    @property
    def invoices(self) -> InvoiceStore: ...
