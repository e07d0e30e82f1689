"""Test clocks: simulated time for the customers created on them (issue 5, Stripe's test clocks).

A clock only moves forward. Its customers' "now" is ``frozen_time``; real customers have no
clock and live in real time. A clock is *ready* when every billing period of its customers that
is due by ``frozen_time`` has been closed, and *advancing* until then.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from billing.domain.errors import FailedPrecondition


class TestClockStatus(enum.Enum):
    __test__ = False  # not a pytest test class, whatever its name says

    READY = "ready"
    ADVANCING = "advancing"
    # A subscription of the clock is parked: the invoicer will not close it until released.
    INTERNAL_FAILURE = "internal_failure"


@dataclass(frozen=True, slots=True)
class TestClock:
    __test__ = False

    id: str
    frozen_time: datetime
    display_name: str = ""
    created_at: datetime | None = None

    def advanced_to(self, frozen_time: datetime) -> TestClock:
        """The clock moved to ``frozen_time``, which must be later: time never runs backwards
        for a customer, or periods already closed would be closed again."""
        if frozen_time <= self.frozen_time:
            raise FailedPrecondition(
                f"test clock {self.id!r} is at {self.frozen_time.isoformat()}; "
                "it can only move to a later time"
            )
        return TestClock(self.id, frozen_time, self.display_name, self.created_at)


@dataclass(frozen=True, slots=True)
class ClockBacklog:
    """What the invoicer still owes a clock: subscriptions due by its time, and of those the
    parked ones."""

    pending: int = 0
    parked: int = 0

    @property
    def status(self) -> TestClockStatus:
        if self.parked:
            return TestClockStatus.INTERNAL_FAILURE
        return TestClockStatus.ADVANCING if self.pending else TestClockStatus.READY
