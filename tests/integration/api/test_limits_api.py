"""Per-token limits through a real server: RESOURCE_EXHAUSTED with a RetryInfo, per token.

The message size and events-per-batch limits are tested in test_bad_input.py and
test_usage_api.py.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from billing.domain.api_tokens import TokenLimits
from billing.v1 import rating_pb2, usage_pb2
from rating.server import RunningServer
from tests.integration.api.auth import bearer, issue, until_known
from tests.integration.api.rpc import failure

QUOTE = "/billing.v1.RatingService/Quote"
STREAM = "/billing.v1.UsageService/StreamUsage"


def retry_delay_ms(error: grpc.aio.AioRpcError) -> int:
    details = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    assert details is not None, "no rich status"
    for detail in status_pb2.Status.FromString(details).details:
        retry = error_details_pb2.RetryInfo()
        if detail.Unpack(retry):
            return retry.retry_delay.ToMilliseconds()
    raise AssertionError("no google.rpc.RetryInfo")


async def test_a_token_over_its_rate_is_told_when_to_retry_and_others_are_not_held_back(
    migrated_url: str, rating_server: RunningServer, channel: grpc.aio.Channel
) -> None:
    target = f"127.0.0.1:{rating_server.port}"
    slow = await issue(migrated_url, "one-per-second", ["quote"], TokenLimits(rate_per_second=1, burst=1))
    await until_known(target, slow)  # which spends its one call
    quote = channel.unary_unary(QUOTE)
    cart = rating_pb2.QuoteRequest(currency="USD").SerializeToString()
    # The next turn is ~1 s away (the server waits up to 1 s): the first call waits for it, the
    # other three are refused, each told a turn (a second) later than the one before.
    outcomes = await asyncio.gather(
        *(quote(cart, metadata=bearer(slow)) for _ in range(4)), return_exceptions=True
    )
    errors = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert [e.code() for e in errors] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 3
    hints = sorted(retry_delay_ms(e) for e in errors)
    assert 1000 < hints[0] <= 2000
    assert [900 < later - earlier <= 1000 for earlier, later in itertools.pairwise(hints)] == [True, True]
    # The admin token of ``channel`` is not affected.
    await asyncio.gather(*(quote(cart) for _ in range(20)))
    await asyncio.sleep(hints[0] / 1000)
    await quote(cart, metadata=bearer(slow))


async def test_a_token_may_hold_only_so_many_streams_open(
    migrated_url: str, rating_server: RunningServer, channel: grpc.aio.Channel
) -> None:
    target = f"127.0.0.1:{rating_server.port}"
    secret = await issue(migrated_url, "one-stream", ["usage:write", "quote"], TokenLimits(max_streams=1))
    await until_known(target, secret)
    stream = channel.stream_stream(
        STREAM,
        request_serializer=usage_pb2.StreamUsageRequest.SerializeToString,
        response_deserializer=usage_pb2.StreamUsageResponse.FromString,
    )
    # An event of no meter: answered as rejected, and the stream stays open.
    batch = usage_pb2.StreamUsageRequest(
        events=[usage_pb2.UsageEvent(idempotency_key="k", event_name="nope")]
    )

    async def open_stream() -> Any:
        call = stream(metadata=bearer(secret))
        await call.write(batch)
        return call, await call.read()

    first, answer = await open_stream()
    assert answer.rejected_count == 1
    refused = await failure(open_stream())
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert retry_delay_ms(refused) > 0
    await first.done_writing()
    assert await first.code() == grpc.StatusCode.OK
    second, answer = await open_stream()  # the slot was given back
    assert answer.rejected_count == 1
    await second.done_writing()


async def test_calls_a_little_over_the_rate_wait_their_turn_and_the_rest_are_refused(
    migrated_url: str, rating_server: RunningServer, channel: grpc.aio.Channel
) -> None:
    """10 calls/s, burst 1: one call per 100 ms. Twelve calls at once wait 0, 100, ... 1,000 ms
    (within the server's 1 s of waiting); the twelfth's turn would be 1.1 s away: refused."""
    target = f"127.0.0.1:{rating_server.port}"
    secret = await issue(migrated_url, "ten-per-second", ["quote"], TokenLimits(rate_per_second=10, burst=1))
    await until_known(target, secret)
    await asyncio.sleep(0.15)  # the probe's place has passed: the next call's turn is now
    quote = channel.unary_unary(QUOTE)
    cart = rating_pb2.QuoteRequest(currency="USD").SerializeToString()
    began = time.monotonic()
    outcomes = await asyncio.gather(
        *(quote(cart, metadata=bearer(secret)) for _ in range(12)), return_exceptions=True
    )
    elapsed = time.monotonic() - began
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert [error.code() for error in refused] == [grpc.StatusCode.RESOURCE_EXHAUSTED], outcomes
    assert 1000 < retry_delay_ms(refused[0]) <= 1100
    assert 1.0 <= elapsed < 3.0  # the eleventh call waited its 1,000 ms


async def test_a_call_whose_deadline_comes_before_its_turn_is_refused_and_gives_its_place_back(
    migrated_url: str, rating_server: RunningServer, channel: grpc.aio.Channel
) -> None:
    target = f"127.0.0.1:{rating_server.port}"
    secret = await issue(
        migrated_url, "ten-per-second-2", ["quote"], TokenLimits(rate_per_second=10, burst=1)
    )
    await until_known(target, secret)
    await asyncio.sleep(0.15)
    quote = channel.unary_unary(QUOTE)
    cart = rating_pb2.QuoteRequest(currency="USD").SerializeToString()
    await quote(cart, metadata=bearer(secret))  # now; the next turn is 100 ms away
    impatient = await failure(quote(cart, metadata=bearer(secret), timeout=0.05))
    # Refused with a hint, not left to expire: DEADLINE_EXCEEDED would tell the caller nothing.
    assert impatient.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert 0 < retry_delay_ms(impatient) <= 100
    # Its place was given back: the next call waits for the turn after the first (< 100 ms),
    # not for the one after the refused call's (~200 ms), so a 150 ms deadline is enough.
    await quote(cart, metadata=bearer(secret), timeout=0.15)
