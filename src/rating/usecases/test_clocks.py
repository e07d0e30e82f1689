"""Test clock use cases: simulated time for trying products (issue 5).

Advancing a clock only moves its time; the invoicer notices (the row's trigger wakes it, its
polling guarantees it) and closes every period of the clock's customers due by the new time.
The clock's status is derived from what is still due, so it can never claim READY early.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from billing.domain.test_clock import ClockBacklog, TestClock
from rating.usecases.billing_ports import BillingUnitOfWork


@dataclass(frozen=True, slots=True)
class ClockState:
    clock: TestClock
    backlog: ClockBacklog


async def create_test_clock(uow: BillingUnitOfWork, clock: TestClock) -> ClockState:
    created = await uow.test_clocks.add(dataclasses.replace(clock, id=uow.new_id("clock")))
    return ClockState(created, ClockBacklog())


async def get_test_clock(uow: BillingUnitOfWork, clock_id: str) -> ClockState:
    clock = await uow.test_clocks.get(clock_id)
    return ClockState(clock, await uow.test_clocks.backlog(clock_id))


async def list_test_clocks(uow: BillingUnitOfWork, *, after: str | None, limit: int) -> list[ClockState]:
    clocks = await uow.test_clocks.list(after=after, limit=limit)
    return [ClockState(c, await uow.test_clocks.backlog(c.id)) for c in clocks]


async def advance_test_clock(uow: BillingUnitOfWork, clock_id: str, frozen_time: datetime) -> ClockState:
    clock = await uow.test_clocks.get(clock_id, for_update=True)
    moved = clock.advanced_to(frozen_time)
    await uow.test_clocks.set_time(clock_id, moved.frozen_time)
    return ClockState(moved, await uow.test_clocks.backlog(clock_id))


async def delete_test_clock(uow: BillingUnitOfWork, clock_id: str) -> None:
    await uow.test_clocks.get(clock_id, for_update=True)
    await uow.test_clocks.delete(clock_id)
