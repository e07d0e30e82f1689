"""In-memory fakes of the billing ports (test clocks, invoices), beside the catalog fakes."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from billing.domain.errors import NotFound
from billing.domain.invoice_records import CreditNote, InvoiceStatus, IssuedInvoice, Payment
from billing.domain.test_clock import ClockBacklog, TestClock
from tests.unit.usecases.fakes import FakeState, FakeUnitOfWork


class FakeTestClocks:
    __test__ = False

    def __init__(self) -> None:
        self.clocks: dict[str, TestClock] = {}
        self.deleted: set[str] = set()
        self.backlogs: dict[str, ClockBacklog] = {}

    async def add(self, clock: TestClock) -> TestClock:
        self.clocks[clock.id] = clock
        return clock

    async def get(self, clock_id: str, *, for_update: bool = False) -> TestClock:
        if clock_id not in self.clocks or clock_id in self.deleted:
            raise NotFound(f"test clock {clock_id!r} not found")
        return self.clocks[clock_id]

    async def list(self, *, after: str | None, limit: int) -> list[TestClock]:
        live = sorted(c for c in self.clocks if c not in self.deleted and (after is None or c > after))
        return [self.clocks[c] for c in live[:limit]]

    async def set_time(self, clock_id: str, frozen_time: datetime) -> TestClock:
        self.clocks[clock_id] = dataclasses.replace(self.clocks[clock_id], frozen_time=frozen_time)
        return self.clocks[clock_id]

    async def delete(self, clock_id: str) -> None:
        self.deleted.add(clock_id)

    async def time_of(self, clock_id: str) -> datetime:
        return self.clocks[clock_id].frozen_time

    async def backlog(self, clock_id: str) -> ClockBacklog:
        return self.backlogs.get(clock_id, ClockBacklog())


class FakeInvoices:
    def __init__(self) -> None:
        self.invoices: dict[str, IssuedInvoice] = {}
        self.events: list[tuple[str, str]] = []

    async def get(self, invoice_id: str, *, for_update: bool = False) -> IssuedInvoice:
        try:
            return self.invoices[invoice_id]
        except KeyError:
            raise NotFound(f"invoice {invoice_id!r} not found") from None

    async def list(self, **_: Any) -> list[IssuedInvoice]:
        return list(self.invoices.values())

    async def set_status(self, invoice: IssuedInvoice, to: InvoiceStatus, at: datetime) -> None:
        current = self.invoices[invoice.id]
        self.invoices[invoice.id] = dataclasses.replace(current, status=to, status_changed_at=at)
        self.events.append((invoice.id, f"invoice.{to.value}"))

    async def add_payment(self, invoice: IssuedInvoice, payment: Payment) -> Payment:
        current = self.invoices[invoice.id]
        self.invoices[invoice.id] = dataclasses.replace(current, payments=(*current.payments, payment))
        return payment

    async def add_credit_note(self, invoice: IssuedInvoice, note: CreditNote) -> CreditNote:
        current = self.invoices[invoice.id]
        numbered = dataclasses.replace(note, number=f"{invoice.number}-CN{len(current.credit_notes) + 1}")
        self.invoices[invoice.id] = dataclasses.replace(
            current, credit_notes=(*current.credit_notes, numbered)
        )
        return numbered


class FakeBillingUnitOfWork(FakeUnitOfWork):
    """The catalog fake plus billing stores (not rolled back: the use cases under test raise
    before they write)."""

    def __init__(self, state: FakeState | None = None) -> None:
        super().__init__(state or FakeState())
        self.test_clocks = FakeTestClocks()
        self.invoices = FakeInvoices()
