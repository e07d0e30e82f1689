"""Per-token call rate and open streams, kept in memory by each server process.

The rate limit is GCRA (the generic cell rate algorithm: a token bucket kept as one integer,
the theoretical arrival time of the next call), in integer nanoseconds. Like nginx's
``limit_req`` with ``burst``, a call a little over the rate is delayed until its turn, up to
``max_delay_ms``, instead of refused: a closed-loop caller at its limit then sees its calls
slowed down, not a storm of refusals it retries immediately. Beyond that, the call is refused
with ``RESOURCE_EXHAUSTED`` and a RetryInfo for when its own turn would have come. That hint is
deliberately the whole wait, not just until the queue has one free place: with the shorter hint,
every refused caller of a closed loop came back at once, nearly all were refused again, and the
refusals (each still a gRPC call the server pays for) outnumbered the served calls 3 to 1.

Each process limits on its own: behind N replicas a token may make N times its rate.
"""

from __future__ import annotations

from dataclasses import dataclass

from billing.domain.api_tokens import ApiToken
from billing.domain.errors import ResourceExhausted

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
# When a stream ends is unknown; a second is long enough not to spin and short enough to recover.
STREAM_RETRY_MS = 1_000
# However many callers were refused before, none is told to wait longer than this.
MAX_RETRY_NS = 60 * NS_PER_S


@dataclass(frozen=True)
class LimitDefaults:
    """Limits for a token that sets none itself. The rate is far above what one process
    serves (~7k calls/s), so only tokens given a lower rate are held back by it; to keep a
    noisy caller from slowing the others, give it a rate (``billing tokens create --rate``)."""

    rate_per_second: int = 10_000
    max_streams: int = 8
    # A call over the rate waits for its turn rather than being refused (a refusal is a whole
    # gRPC call the server pays for, and comes back), up to this long and never past its own
    # deadline (``access.py``), and while fewer than ``max_waiting`` calls of its token wait:
    # that bounds what a token can hold in the server whatever its rate (64 calls in flight at
    # 100 calls/s wait up to 640 ms and are never refused).
    max_delay_ms: int = 1_000
    max_waiting: int = 128


class RateLimiter:
    __slots__ = (
        "_interval",
        "_max_delay",
        "_max_waiting",
        "_retry_at",
        "_tat",
        "_tolerance",
        "name",
        "waiting",
    )

    def __init__(
        self,
        name: str,
        rate_per_second: int,
        burst: int,
        max_delay_ms: int,
        max_waiting: int = LimitDefaults.max_waiting,
    ) -> None:
        self.name = name
        self._max_waiting = max_waiting
        self.waiting = 0  # admitted calls waiting for their turn; kept by whoever makes them wait
        self._interval = NS_PER_S // rate_per_second
        self._tolerance = self._interval * (burst - 1)
        self._max_delay = max_delay_ms * NS_PER_MS
        self._tat = 0
        self._retry_at = 0  # the latest time a refusal told a caller to come back at

    def admit(self, now_ns: int) -> int:
        """Nanoseconds the call must wait before it runs (usually 0); raises when it may not run."""
        tat = self._tat if self._tat > now_ns else now_ns
        wait = tat - self._tolerance - now_ns
        if wait > self._max_delay or (wait > 0 and self.waiting >= self._max_waiting):
            # Each refused caller is told a later time than the one refused before it, one
            # interval apart: told the same time, a closed loop's refused calls all came back at
            # once, and the burst of refusals stalled every other caller of the process for
            # milliseconds. Spread out, they come back no faster than the rate.
            retry_at = min(max(tat - self._tolerance, self._retry_at + self._interval), now_ns + MAX_RETRY_NS)
            self._retry_at = retry_at
            raise self.exceeded(retry_at - now_ns)
        self._tat = tat + self._interval
        return wait if wait > 0 else 0

    def exceeded(self, wait_ns: int) -> ResourceExhausted:
        """The refusal of a call whose turn comes in ``wait_ns``: retry then, not before."""
        retry_ms = -(-wait_ns // NS_PER_MS)  # rounded up
        return ResourceExhausted(f"rate limit of token {self.name!r} exceeded", retry_after_ms=retry_ms)

    def refund(self) -> None:
        """Give back the place of an admitted call that did not run (its deadline was too short
        to wait for its turn), so the token's later calls are not held back by it."""
        self._tat -= self._interval


class StreamSlots:
    """Open streaming calls of one token, at most ``limit`` at a time."""

    __slots__ = ("_limit", "name", "open")

    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self._limit = limit
        self.open = 0

    def take(self) -> None:
        if self.open >= self._limit:
            raise ResourceExhausted(
                f"token {self.name!r} has {self.open} streams open, its limit", retry_after_ms=STREAM_RETRY_MS
            )
        self.open += 1

    def give_back(self) -> None:
        self.open -= 1


@dataclass(frozen=True, slots=True)
class Allowance:
    rate: RateLimiter
    streams: StreamSlots


def allowance_for(token: ApiToken, defaults: LimitDefaults) -> Allowance:
    limits = token.limits
    rate = limits.rate_per_second or defaults.rate_per_second
    # Unless the token says otherwise, a burst is a tenth of a second's worth of calls.
    burst = limits.burst or max(1, rate // 10)
    return Allowance(
        RateLimiter(token.name, rate, burst, defaults.max_delay_ms, defaults.max_waiting),
        StreamSlots(token.name, limits.max_streams or defaults.max_streams),
    )
