"""Storage ports of the subscription, invoice and test-clock use cases (Protocols, faked in tests)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from billing.domain.catalog import Catalog
from billing.domain.invoice_records import CreditNote, InvoiceStatus, IssuedInvoice, Payment
from billing.domain.invoices import BillingCustomer, CloseInputs, InvoiceDraft
from billing.domain.lines import InvoiceLine
from billing.domain.subscriptions import Coverage, Subscription, SubscriptionStatus
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


class SubscriptionRow(Protocol):
    """A stored subscription: the domain state and what the invoicer's queue knows of it."""

    @property
    def id(self) -> str: ...

    @property
    def state(self) -> Any:
        """The domain ``Subscription``."""
        ...

    @property
    def version(self) -> int: ...

    @property
    def parked_reason(self) -> str | None: ...

    @property
    def parked_at(self) -> datetime | None: ...

    @property
    def created_at(self) -> datetime | None: ...

    @property
    def updated_at(self) -> datetime | None: ...


class SubscriptionStore(Protocol):
    async def add(self, sub: Subscription) -> SubscriptionRow: ...

    async def get(self, subscription_id: str, *, for_update: bool = False) -> SubscriptionRow: ...

    async def find(
        self,
        *,
        customer_id: str | None,
        status: SubscriptionStatus | None,
        after: str | None,
        limit: int,
        parked: bool = False,
    ) -> Sequence[SubscriptionRow]: ...

    async def unpark(self, subscription_id: str) -> bool:
        """Clear the park reason and the failed attempts, so the invoicer claims it again."""
        ...

    async def save(self, row: SubscriptionRow, sub: Subscription) -> SubscriptionRow:
        """Write the new state if the row is still at ``row.version`` (else Aborted)."""
        ...

    async def coverages(self, sub: Subscription) -> list[Coverage]:
        """The live (not credited) coverages a change may credit."""
        ...

    async def save_coverages(self, subscription_id: str, coverages: Sequence[Coverage]) -> None: ...

    async def add_pending(self, subscription_id: str, lines: Sequence[InvoiceLine]) -> None: ...

    async def redeem_coupons(self, coupon_ids: Sequence[str]) -> None:
        """Count a redemption of each coupon; FailedPrecondition past its max_redemptions."""
        ...

    async def billing_customer(self, customer_id: str) -> tuple[BillingCustomer, int]:
        """The customer as a close sees it, and its credit balance."""
        ...

    async def close_inputs(self, sub: Subscription, catalog: Catalog) -> CloseInputs:
        """What the invoicer's close of the next boundary reads, read the same way."""
        ...

    async def invoice_now(self, sub: Subscription, draft: InvoiceDraft, test_clock_id: str | None) -> str:
        """Store the invoice of an ``always_invoice`` change as a draft; its id."""
        ...


class BillingUnitOfWork(UnitOfWork, Protocol):
    """A unit of work that also reaches subscriptions, invoices and test clocks."""

    @property
    def test_clocks(self) -> TestClockStore: ...

    @property
    def invoices(self) -> InvoiceStore: ...

    @property
    def subscriptions(self) -> SubscriptionStore: ...
