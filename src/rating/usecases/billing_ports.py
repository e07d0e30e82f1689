"""Storage ports of the subscription, invoice and test-clock use cases (Protocols, faked in tests)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

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

    async def backlog(self, clock_id: str) -> ClockBacklog:
        """Subscriptions of the clock's customers with a period due by its time, not closed."""
        ...


class BillingUnitOfWork(UnitOfWork, Protocol):
    """A unit of work that also reaches subscriptions, invoices and test clocks."""

    @property
    def test_clocks(self) -> TestClockStore: ...
