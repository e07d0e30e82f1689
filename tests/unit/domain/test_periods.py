"""Billing cycles (docs/billing-rules.md §1), with boundaries worked out by hand on a calendar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing.domain.catalog import Interval
from billing.domain.errors import InvalidArgument
from billing.domain.periods import AnchorMode, BillingCycle


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_a_month_end_anchor_clamps_and_re_expands() -> None:
    cycle = BillingCycle(Interval.MONTH, 1, _utc(2024, 1, 31, 12), "UTC")
    days = [cycle.boundary(k).date().isoformat() for k in range(6)]
    assert days == ["2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30", "2024-05-31", "2024-06-30"]
    assert cycle.boundary(13).date().isoformat() == "2025-02-28"


def test_a_february_29_anchor_is_february_28_in_common_years() -> None:
    cycle = BillingCycle(Interval.YEAR, 1, _utc(2024, 2, 29), "UTC")
    assert [cycle.boundary(k).date().isoformat() for k in (1, 3, 4, -1)] == [
        "2025-02-28",
        "2027-02-28",
        "2028-02-29",
        "2023-02-28",
    ]


def test_the_local_time_of_day_survives_daylight_saving() -> None:
    # 09:00 in New York is 14:00Z in winter and 13:00Z after the Mar 10 2024 change.
    cycle = BillingCycle(Interval.MONTH, 1, _utc(2024, 2, 10, 14), "America/New_York")
    assert cycle.boundary(1) == _utc(2024, 3, 10, 13)


def test_a_local_time_in_the_spring_gap_resolves_with_fold_0() -> None:
    # 02:30 does not exist on Mar 10 2024 in New York; fold=0 reads it with the EST offset:
    # 02:30 EST = 07:30Z (= 03:30 EDT).
    cycle = BillingCycle(Interval.DAY, 1, _utc(2024, 3, 9, 7, 30), "America/New_York")
    assert cycle.boundary(1) == _utc(2024, 3, 10, 7, 30)
    assert cycle.boundary(2) == _utc(2024, 3, 11, 6, 30)


def test_boundary_0_is_the_anchor_even_in_the_second_of_two_repeated_hours() -> None:
    # Nov 3 2024, New York: 01:30 happens at 05:30Z (EDT) and again at 06:30Z (EST).
    second = _utc(2024, 11, 3, 6, 30)
    cycle = BillingCycle(Interval.DAY, 1, second, "America/New_York")
    assert cycle.boundary(0) == second
    assert cycle.boundary(1) == _utc(2024, 11, 4, 6, 30)
    assert cycle.index_at(second) == 0


def test_a_day_lasts_23_or_25_hours_across_dst() -> None:
    cycle = BillingCycle(Interval.DAY, 1, _utc(2024, 3, 30, 23), "Europe/Paris")  # Mar 31 00:00 CET
    assert cycle.boundary(1) - cycle.boundary(0) == timedelta(hours=23)


def test_lord_howe_shifts_by_half_an_hour() -> None:
    # Lord Howe is UTC+10:30 in winter and +11 in summer; DST ended Apr 7 2024 at 02:00 local.
    cycle = BillingCycle(Interval.DAY, 1, _utc(2024, 4, 6, 13), "Australia/Lord_Howe")  # Apr 7 00:00 +11
    assert cycle.boundary(1) - cycle.boundary(0) == timedelta(hours=24, minutes=30)


def test_calendar_weeks_start_on_monday_midnight_at_or_after_the_anchor() -> None:
    # Wednesday Jan 3 2024, 10:00 in Kathmandu (+05:45); the next Monday is Jan 8.
    cycle = BillingCycle(Interval.WEEK, 1, _utc(2024, 1, 3, 4, 15), "Asia/Kathmandu", AnchorMode.CALENDAR)
    assert cycle.boundary(0) == datetime(2024, 1, 7, 18, 15, tzinfo=UTC)
    assert cycle.boundary(-1) == datetime(2023, 12, 31, 18, 15, tzinfo=UTC)


def test_a_calendar_anchor_on_a_boundary_is_boundary_0() -> None:
    cycle = BillingCycle(Interval.MONTH, 1, _utc(2025, 3, 1), "UTC", AnchorMode.CALENDAR)
    assert cycle.boundary(0) == _utc(2025, 3, 1)
    assert cycle.boundary(1) == _utc(2025, 4, 1)


def test_calendar_alignment_needs_an_interval_count_of_1() -> None:
    with pytest.raises(ValueError, match="interval count"):
        BillingCycle(Interval.MONTH, 3, _utc(2025, 1, 1), "UTC", AnchorMode.CALENDAR)


def test_an_unknown_zone_is_an_invalid_argument() -> None:
    with pytest.raises(InvalidArgument):
        BillingCycle(Interval.MONTH, 1, _utc(2025, 1, 1), "Mars/Olympus")


def test_every_three_months_counts_from_the_anchor() -> None:
    cycle = BillingCycle(Interval.MONTH, 3, _utc(2024, 11, 30), "UTC")
    assert [cycle.boundary(k).date().isoformat() for k in (1, 2, -1)] == [
        "2025-02-28",
        "2025-05-30",
        "2024-08-30",
    ]


def test_index_at_finds_the_period_containing_an_instant() -> None:
    cycle = BillingCycle(Interval.MONTH, 1, _utc(2024, 1, 31), "UTC")
    assert cycle.index_at(_utc(2024, 2, 29)) == 1  # half-open: a boundary starts its period
    assert cycle.index_at(_utc(2024, 2, 28, 23, 59)) == 0
    assert cycle.index_at(_utc(2023, 12, 31)) == -1
    period = cycle.period_containing(_utc(2024, 3, 15))
    assert (period.start, period.end) == (_utc(2024, 2, 29), _utc(2024, 3, 31))
