"""The unit of work of the subscription and invoice API: the catalog one, plus billing repositories."""

from __future__ import annotations

from billing.store.invoice_commands import InvoiceRepository
from billing.store.subscription_commands import SubscriptionRepository
from billing.store.test_clocks import TestClockRepository
from billing.store.unit_of_work import PostgresUnitOfWork


class PostgresBillingUnitOfWork(PostgresUnitOfWork):
    test_clocks: TestClockRepository
    invoices: InvoiceRepository
    subscriptions: SubscriptionRepository

    async def __aenter__(self) -> PostgresBillingUnitOfWork:
        await super().__aenter__()
        connection = self._connection
        self.test_clocks = TestClockRepository(connection)
        self.invoices = InvoiceRepository(connection)
        self.subscriptions = SubscriptionRepository(connection)
        return self
