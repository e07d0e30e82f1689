"""Spans, metrics and log ids of real calls through a real server (rating.api.tracing)."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from billing.v1 import (
    catalog_pb2_grpc,
    customer_pb2,
    customer_pb2_grpc,
    rating_pb2,
    rating_pb2_grpc,
    usage_pb2,
    usage_pb2_grpc,
)
from rating.server import RunningServer
from tests.integration.api import builders
from tests.integration.api.rpc import failure, request_id
from tests.integration.api.test_quote_api import caught_up
from tests.integration.observability.conftest import METRICS, SPANS


def _traceparent(sampled: bool = True) -> tuple[str, int]:
    trace_id = int(secrets.token_hex(16), 16)
    return f"00-{trace_id:032x}-{secrets.token_hex(8)}-{'01' if sampled else '00'}", trace_id


def _spans_of(trace_id: int) -> list[ReadableSpan]:
    return [s for s in SPANS.get_finished_spans() if s.context is not None and s.context.trace_id == trace_id]


async def _ended_spans_of(trace_id: int) -> list[ReadableSpan]:
    """The trace's spans once its server span has ended. A call ended by abort sends its status
    before the handler unwinds, so the client may see the status before the span is finished."""
    for _ in range(500):
        spans = _spans_of(trace_id)
        if any(s.kind is SpanKind.SERVER for s in spans):
            return spans
        await asyncio.sleep(0.01)
    return _spans_of(trace_id)


def _call_counts() -> dict[tuple[str, int], int]:
    counts: dict[tuple[str, int], int] = {}
    data = METRICS.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "rpc.server.call.duration":
                    for point in metric.data.data_points:
                        key = (
                            str(point.attributes["rpc.method"]),
                            int(point.attributes["rpc.grpc.status_code"]),
                        )
                        counts[key] = point.count  # type: ignore[union-attr]
    return counts


def _usage_counts() -> dict[str, int]:
    data = METRICS.get_metrics_data()
    return {
        str(point.attributes["outcome"]): int(point.value)  # type: ignore[union-attr]
        for resource in (data.resource_metrics if data else ())
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "billing.usage.events"
        for point in metric.data.data_points
    }


def _quote() -> rating_pb2.QuoteRequest:
    return rating_pb2.QuoteRequest(currency="USD")


async def test_a_sampled_caller_gets_a_server_span_with_query_spans_under_it(
    traced_channel: grpc.aio.Channel,
) -> None:
    stub = customer_pb2_grpc.CustomerServiceStub(traced_channel)
    header, trace_id = _traceparent()
    email = f"canary-{uuid.uuid4().hex[:6]}@example.com"
    customer = customer_pb2.Customer(display_name="Traced", currency="USD", email=email)
    await stub.CreateCustomer(
        customer_pb2.CreateCustomerRequest(customer=customer, request_id=request_id()),
        metadata=(("traceparent", header),),
    )
    spans = await _ended_spans_of(trace_id)
    (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
    assert server.name == "billing.v1.CustomerService/CreateCustomer"
    assert server.attributes is not None
    assert server.attributes["rpc.method"] == "CreateCustomer"
    assert server.attributes["rpc.grpc.status_code"] == 0
    assert server.status.status_code is StatusCode.UNSET
    queries = [s for s in spans if s.kind is SpanKind.CLIENT]
    operations = {s.name for s in queries}
    assert {"BEGIN", "INSERT", "COMMIT"} <= operations, operations
    for query in queries:
        assert query.parent is not None
        assert server.context is not None
        assert query.parent.span_id == server.context.span_id
        assert query.attributes is not None
        assert query.attributes["db.system.name"] == "postgresql"
    # Statements are recorded, their arguments (customer data) never.
    assert email not in str([dict(s.attributes or {}) for s in spans])


async def test_an_unsampled_call_makes_no_span(traced_channel: grpc.aio.Channel) -> None:
    stub = rating_pb2_grpc.RatingServiceStub(traced_channel)
    header, trace_id = _traceparent(sampled=False)
    before = len(SPANS.get_finished_spans())
    await stub.Quote(_quote(), metadata=(("traceparent", header),))
    await stub.Quote(_quote())  # no caller: sampled at ratio 0, so never
    assert _spans_of(trace_id) == []
    assert len(SPANS.get_finished_spans()) == before


async def test_a_failed_call_marks_its_span_as_an_error_with_the_status(
    traced_channel: grpc.aio.Channel,
) -> None:
    stub = rating_pb2_grpc.RatingServiceStub(traced_channel)
    header, trace_id = _traceparent()
    error = await failure(
        stub.Quote(rating_pb2.QuoteRequest(currency="NOPE"), metadata=(("traceparent", header),))
    )
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    (span,) = await _ended_spans_of(trace_id)
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "INVALID_ARGUMENT"  # the name only: details echo input
    assert span.attributes is not None
    assert span.attributes["rpc.grpc.status_code"] == 3


async def test_an_undecodable_request_is_traced_as_invalid_argument(traced_channel: grpc.aio.Channel) -> None:
    header, trace_id = _traceparent()
    call = traced_channel.unary_unary("/billing.v1.RatingService/Quote")
    error = await failure(call(b"\xff\xff\xff", metadata=(("traceparent", header),)))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    (span,) = await _ended_spans_of(trace_id)
    assert span.status.status_code is StatusCode.ERROR


async def test_calls_are_counted_per_method_and_status(traced_channel: grpc.aio.Channel) -> None:
    stub = rating_pb2_grpc.RatingServiceStub(traced_channel)
    method = "billing.v1.RatingService/Quote"
    before = _call_counts()
    for _ in range(3):
        await stub.Quote(_quote())
    await failure(stub.Quote(rating_pb2.QuoteRequest(currency="NOPE")))
    for _ in range(500):  # the refused call is counted as its handler unwinds, after its status
        after = _call_counts()
        if after.get((method, 3), 0) > before.get((method, 3), 0):
            break
        await asyncio.sleep(0.01)
    assert after.get((method, 0), 0) - before.get((method, 0), 0) == 3
    assert after.get((method, 3), 0) - before.get((method, 3), 0) == 1


async def test_health_checks_are_neither_traced_nor_counted(traced_channel: grpc.aio.Channel) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    header, trace_id = _traceparent()
    await health_pb2_grpc.HealthStub(traced_channel).Check(
        health_pb2.HealthCheckRequest(), metadata=(("traceparent", header),)
    )
    assert _spans_of(trace_id) == []
    assert not any(method.startswith("grpc.") for method, _ in _call_counts())


def _stamp(at: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp


async def test_usage_events_are_counted_by_outcome(
    traced_channel: grpc.aio.Channel, traced_server: RunningServer, migrated_url: str
) -> None:
    catalog = catalog_pb2_grpc.CatalogServiceStub(traced_channel)
    meter = await builders.meter(catalog)
    customer = (
        await customer_pb2_grpc.CustomerServiceStub(traced_channel).CreateCustomer(
            customer_pb2.CreateCustomerRequest(
                customer=customer_pb2.Customer(display_name="Usage", currency="USD"), request_id=request_id()
            )
        )
    ).customer
    await caught_up(traced_server, migrated_url)
    at = _stamp(datetime.now(UTC) - timedelta(minutes=1))

    def event(key: str, name: str = meter.event_name) -> Any:
        return usage_pb2.UsageEvent(
            idempotency_key=key,
            customer=customer.name,
            event_name=name,
            timestamp=at,
            properties={"channel": "email"},
            value="2",
        )

    before = _usage_counts()
    key = uuid.uuid4().hex
    usage = usage_pb2_grpc.UsageServiceStub(traced_channel)
    first = await usage.RecordUsageBatch(
        usage_pb2.RecordUsageBatchRequest(events=[event(key), event(uuid.uuid4().hex, name="no.such.meter")])
    )
    again = await usage.RecordUsage(usage_pb2.RecordUsageRequest(event=event(key)))
    assert (first.accepted_count, first.rejected_count, again.duplicate) == (1, 1, True)
    after = _usage_counts()
    assert {k: after.get(k, 0) - before.get(k, 0) for k in ("accepted", "duplicate", "rejected")} == {
        "accepted": 1,
        "duplicate": 1,
        "rejected": 1,
    }
