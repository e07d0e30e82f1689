"""Proration factors: which fraction of a period a part of it is (docs/billing-rules.md §4).

Units: factors are exact ``Fraction`` values in [0, 1]. A prorated amount is the exact product of
a full-period amount and a factor, rounded once per line by ``money.round_fraction``.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from fractions import Fraction

from billing.domain.periods import Period, local_wall

_MICROSECOND = timedelta(microseconds=1)


class ProrationPolicy(enum.Enum):
    PER_SECOND = "per_second"
    PER_DAY = "per_day"


def factor(part_start: datetime, whole: Period, policy: ProrationPolicy, time_zone: str) -> Fraction:
    """The share of ``whole`` that ``[part_start, whole.end)`` is.

    Per second: elapsed time (exact to the microsecond; the API sends whole seconds). Per day:
    calendar dates in ``time_zone`` between the local dates of the two instants, so a change at
    any time of a day counts that whole day as remaining.
    """
    if not whole.start <= part_start <= whole.end:
        raise ValueError(f"{part_start.isoformat()} is outside [{whole.start}, {whole.end})")
    if whole.empty:
        return Fraction(0)
    if policy is ProrationPolicy.PER_SECOND:
        return Fraction((whole.end - part_start) // _MICROSECOND, (whole.end - whole.start) // _MICROSECOND)
    days = _local_days(whole.start, whole.end, time_zone)
    if days == 0:
        # A debit made on the last local date of its period was 0 days' worth: so is its credit.
        return Fraction(0)
    return Fraction(_local_days(part_start, whole.end, time_zone), days)


def _local_days(start: datetime, end: datetime, time_zone: str) -> int:
    return (local_wall(end, time_zone).date() - local_wall(start, time_zone).date()).days
