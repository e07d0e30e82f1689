"""Test clocks on the wire (test_clock.proto)."""

from __future__ import annotations

from datetime import datetime

from billing.domain.test_clock import TestClock, TestClockStatus
from billing.v1 import test_clock_pb2 as pb
from rating.api.converters.common import Checker, convert, optional_timestamp, timestamp_from_datetime
from rating.api.converters.resources import format_name
from rating.usecases.test_clocks import ClockState

_MAX_DISPLAY_NAME = 200

STATUSES_OUT = {
    TestClockStatus.READY: pb.TEST_CLOCK_STATUS_READY,
    TestClockStatus.ADVANCING: pb.TEST_CLOCK_STATUS_ADVANCING,
    TestClockStatus.INTERNAL_FAILURE: pb.TEST_CLOCK_STATUS_INTERNAL_FAILURE,
}


def clock_from_proto(msg: pb.TestClock, field: str = "test_clock") -> TestClock:
    return convert(field, lambda c: _clock(msg, c))


def _clock(msg: pb.TestClock, c: Checker) -> TestClock | None:
    if len(msg.display_name) > _MAX_DISPLAY_NAME:
        c.add("display_name", f"at most {_MAX_DISPLAY_NAME} characters")
    frozen = c.instant(msg, "frozen_time", required=True)
    return None if frozen is None else TestClock("", frozen, msg.display_name)


def frozen_time_from_proto(msg: pb.AdvanceTestClockRequest) -> datetime:
    return convert("", lambda c: c.instant(msg, "frozen_time", required=True))


def clock_to_proto(state: ClockState) -> pb.TestClock:
    clock = state.clock
    return pb.TestClock(
        name=format_name("testClocks", clock.id),
        display_name=clock.display_name,
        frozen_time=timestamp_from_datetime(clock.frozen_time),
        status=STATUSES_OUT[state.backlog.status],
        pending_period_count=state.backlog.pending,
        create_time=optional_timestamp(clock.created_at),
    )
