"""SIGTERM on a real ``billing serve`` process (issue 6, Lifecycle).

Health turns NOT_SERVING, new calls are refused, calls in flight finish within the grace period
(and are cut when they outlive it), and the process exits 0. A bidirectional usage stream is the
call in flight: the test decides when it ends, with no sleep in the server.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from billing.v1 import rating_pb2, rating_pb2_grpc, usage_pb2, usage_pb2_grpc
from tests.integration.api.auth import authorized_channel, issue
from tests.integration.api.test_server_lifecycle import NOT_SERVING, SERVING, _eventually, _free_port, _health


@pytest.fixture
async def serve(create_database) -> AsyncIterator:  # type: ignore[no-untyped-def,type-arg]
    processes: list[asyncio.subprocess.Process] = []

    async def start(grace_seconds: float) -> tuple[asyncio.subprocess.Process, str, str]:
        url = await create_database(migrated=True)
        secret = await issue(url, "shutdown", ["billing:admin"])
        port = _free_port()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "billing.cli", "serve", "--port", str(port),
            "--grace-seconds", str(grace_seconds),
            env={**os.environ, "DATABASE_URL": url, "BILLING_LOG_FORMAT": "json"},
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        processes.append(process)
        target = f"127.0.0.1:{port}"
        assert await _eventually(lambda: _health(target), SERVING, within=20) == SERVING
        return process, target, secret

    yield start
    for process in processes:
        if process.returncode is None:
            process.kill()
            await process.wait()


def _batch(key: str) -> usage_pb2.StreamUsageRequest:
    # An event for a meter that does not exist: answered (rejected) without any catalog set up.
    return usage_pb2.StreamUsageRequest(events=[usage_pb2.UsageEvent(idempotency_key=key, event_name="none")])


async def test_sigterm_refuses_new_calls_and_lets_calls_in_flight_finish(serve) -> None:  # type: ignore[no-untyped-def]
    grace_s = 8.0
    process, target, secret = await serve(grace_s)
    async with authorized_channel(target, secret) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        assert (await watch.read()).status == SERVING
        stream = usage_pb2_grpc.UsageServiceStub(channel).StreamUsage()
        await stream.write(_batch("before"))
        assert (await stream.read()).batch == 0

        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        assert (await asyncio.wait_for(watch.read(), 5)).status == NOT_SERVING
        watch.cancel()  # a watch is a call in flight too; this one has seen what it needed

        quote = rating_pb2.QuoteRequest(currency="USD")
        refused = []
        for stub_channel in (channel, grpc.aio.insecure_channel(target)):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await rating_pb2_grpc.RatingServiceStub(stub_channel).Quote(quote, timeout=5)
            refused.append(caught.value.code())
        assert refused == [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE]

        await stream.write(_batch("after"))  # the call in flight is still served
        answer = await stream.read()
        assert (answer.batch, answer.rejected_count) == (1, 1)
        await stream.done_writing()
        assert await stream.code() is grpc.StatusCode.OK

    code = await asyncio.wait_for(process.wait(), grace_s + 10)
    stderr = (await process.stderr.read()).decode() if process.stderr else ""
    assert code == 0, stderr
    # Nothing was left in flight, so it did not wait out the grace period.
    assert time.monotonic() - signalled < grace_s - 2, stderr
    assert "shutting down" in stderr


async def test_a_call_that_outlives_the_grace_period_is_cut_and_the_process_still_exits_0(serve) -> None:  # type: ignore[no-untyped-def]
    grace_s = 1.0
    process, target, secret = await serve(grace_s)
    async with authorized_channel(target, secret) as channel:
        stream = usage_pb2_grpc.UsageServiceStub(channel).StreamUsage()
        await stream.write(_batch("held"))
        assert (await stream.read()).batch == 0
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        # The stream stays open; the server ends it when the grace period is over.
        assert await asyncio.wait_for(stream.code(), grace_s + 10) is not grpc.StatusCode.OK
        assert time.monotonic() - signalled >= grace_s * 0.9
    code = await asyncio.wait_for(process.wait(), grace_s + 10)
    stderr = (await process.stderr.read()).decode() if process.stderr else ""
    assert code == 0, stderr
