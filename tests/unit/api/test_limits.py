"""The per-token rate limiter (GCRA) and stream slots, on an injected clock."""

from __future__ import annotations

import pytest

from billing.domain.errors import ResourceExhausted
from rating.api.limits import NS_PER_MS, NS_PER_S, RateLimiter, StreamSlots

MS = NS_PER_MS


def test_a_burst_passes_at_once_then_the_rate_holds() -> None:
    limiter = RateLimiter("t", rate_per_second=10, burst=3, max_delay_ms=0)
    assert [limiter.admit(0) for _ in range(3)] == [0, 0, 0]
    with pytest.raises(ResourceExhausted):
        limiter.admit(0)
    assert limiter.admit(100 * MS) == 0  # one interval later, one more call
    with pytest.raises(ResourceExhausted):
        limiter.admit(100 * MS)


def test_over_a_long_run_it_admits_the_rate_and_no_more() -> None:
    limiter = RateLimiter("t", rate_per_second=100, burst=10, max_delay_ms=0)
    admitted = 0
    for now in range(0, 10 * NS_PER_S, NS_PER_MS):  # a call every millisecond for 10 s
        try:
            limiter.admit(now)
            admitted += 1
        except ResourceExhausted:
            pass
    assert admitted == 10 + 999  # the burst at 0 ms, then one every 10 ms from 10 to 9,990 ms


def test_a_call_slightly_over_waits_its_turn_instead_of_being_refused() -> None:
    limiter = RateLimiter("t", rate_per_second=100, burst=1, max_delay_ms=25)
    assert limiter.admit(0) == 0
    assert limiter.admit(0) == 10 * MS
    assert limiter.admit(0) == 20 * MS
    with pytest.raises(ResourceExhausted) as refused:
        limiter.admit(0)  # its turn would be 30 ms away, more than 25
    assert refused.value.retry_after_ms == 30  # when its turn would come: not all at once


def test_a_refusal_says_when_to_come_back_and_then_it_is_admitted() -> None:
    limiter = RateLimiter("t", rate_per_second=2, burst=1, max_delay_ms=0)
    limiter.admit(0)
    with pytest.raises(ResourceExhausted) as refused:
        limiter.admit(100 * MS)
    assert refused.value.retry_after_ms == 400
    assert limiter.admit(100 * MS + refused.value.retry_after_ms * MS) == 0


def test_refused_calls_do_not_push_the_next_turn_further_away() -> None:
    limiter = RateLimiter("t", rate_per_second=1, burst=1, max_delay_ms=0)
    limiter.admit(0)
    for _ in range(1000):
        with pytest.raises(ResourceExhausted):
            limiter.admit(1)
    assert limiter.admit(NS_PER_S) == 0


def test_refused_callers_are_told_to_come_back_one_interval_apart() -> None:
    limiter = RateLimiter("t", rate_per_second=100, burst=1, max_delay_ms=0)
    limiter.admit(0)  # the next turn is at 10 ms
    hints = []
    for _ in range(3):
        with pytest.raises(ResourceExhausted) as refused:
            limiter.admit(1 * MS)
        hints.append(refused.value.retry_after_ms)
    assert hints == [9, 19, 29]  # at 10, 20 and 30 ms: not all three at 10 ms
    # Once those times have passed, a refusal counts from the next turn again.
    limiter.admit(100 * MS)
    with pytest.raises(ResourceExhausted) as refused:
        limiter.admit(100 * MS)
    assert refused.value.retry_after_ms == 10


def test_no_refused_caller_is_told_to_wait_more_than_a_minute() -> None:
    limiter = RateLimiter("t", rate_per_second=1, burst=1, max_delay_ms=0)
    limiter.admit(0)
    for _ in range(100):
        with pytest.raises(ResourceExhausted) as refused:
            limiter.admit(0)
    assert refused.value.retry_after_ms == 60_000


def test_a_call_that_would_wait_is_refused_while_the_token_has_enough_calls_waiting() -> None:
    limiter = RateLimiter("t", rate_per_second=100, burst=1, max_delay_ms=1000, max_waiting=2)
    assert limiter.admit(0) == 0  # its turn now: it does not wait
    assert limiter.admit(0) == 10 * MS
    limiter.waiting += 1  # as access.py counts a call while it waits
    assert limiter.admit(0) == 20 * MS
    limiter.waiting += 1
    with pytest.raises(ResourceExhausted) as refused:
        limiter.admit(0)  # within the 1 s of waiting, but two calls wait already
    assert refused.value.retry_after_ms == 30
    limiter.waiting -= 1  # one turn came
    assert limiter.admit(0) == 30 * MS


def test_stream_slots_are_taken_and_given_back() -> None:
    slots = StreamSlots("t", limit=2)
    slots.take()
    slots.take()
    with pytest.raises(ResourceExhausted) as refused:
        slots.take()
    assert refused.value.retry_after_ms > 0
    slots.give_back()
    slots.take()
