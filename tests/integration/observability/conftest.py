"""Telemetry installed for the test process, read in memory, and a rating server that uses it.

``configure_telemetry`` installs global providers once per process, so this is session-scoped.
The sampler samples no root (ratio 0) and follows a caller's decision: a test chooses whether a
call is traced by the ``traceparent`` it sends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from billing.telemetry import Telemetry, configure_telemetry
from billing.tracing import SamplingPolicy
from rating.server import RunningServer, ServerConfig, start_server
from tests.integration.api.auth import authorized_channel, issue

SPANS = InMemorySpanExporter()
METRICS = InMemoryMetricReader()


@pytest.fixture(scope="session")
def telemetry() -> Telemetry:
    configured = configure_telemetry(
        "billing-rating-test",
        {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"},
        span_processors=[SimpleSpanProcessor(SPANS)],
        metric_readers=[METRICS],
    )
    # Configured once per process: a test that configured it first would make these tests lie.
    assert configured.policy == SamplingPolicy(0.0, parent_based=True)
    return configured


@pytest.fixture(scope="module")
async def traced_token(migrated_url: str) -> str:
    """Issued before the server starts, so the server's token table holds it from the first call."""
    return await issue(migrated_url, "traced", ["billing:admin"])


@pytest.fixture(scope="module")
async def traced_server(
    telemetry: Telemetry, migrated_url: str, traced_token: str
) -> AsyncIterator[RunningServer]:
    config = ServerConfig(port=0, catalog_poll_seconds=0.1, health_poll_seconds=0.2, grace_seconds=2)
    server = await start_server(migrated_url, config)
    yield server
    await server.stop(config.grace_seconds)


@pytest.fixture(scope="module")
async def traced_channel(traced_server: RunningServer, traced_token: str) -> AsyncIterator[grpc.aio.Channel]:
    async with authorized_channel(f"127.0.0.1:{traced_server.port}", traced_token) as channel:
        yield channel
