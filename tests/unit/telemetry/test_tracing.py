"""The lean sampling decision, trace context strings, and spans for jobs."""

from __future__ import annotations

import random

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, use_span

from billing.tracing import (
    DEFAULT_SAMPLER_RATIO,
    LeanTracer,
    PresetTraceIds,
    SamplingPolicy,
    current_traceparent,
    format_traceparent,
    parse_traceparent,
)

VALID = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _tracer(policy: SamplingPolicy) -> tuple[LeanTracer, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=policy.sampler(), id_generator=PresetTraceIds(), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return LeanTracer(provider, policy, "test"), exporter


def test_a_valid_traceparent_round_trips() -> None:
    parsed = parse_traceparent(VALID)
    assert parsed is not None
    assert parsed.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert parsed.span_id == 0xB7AD6B7169203331
    assert parsed.trace_flags.sampled
    assert parsed.is_remote
    assert format_traceparent(parsed) == VALID


@pytest.mark.parametrize(
    "header",
    [
        "",
        VALID.upper(),  # the specification allows lowercase hex only
        "ff" + VALID[2:],  # version ff is invalid
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # zero trace id
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # zero span id
        VALID + "-extra",  # version 00 has exactly four fields
        VALID[:-1],
        "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",
    ],
)
def test_an_invalid_traceparent_is_ignored(header: str) -> None:
    assert parse_traceparent(header) is None


def test_a_later_version_may_carry_more_fields() -> None:
    assert parse_traceparent("01" + VALID[2:] + "-what-comes-next") is not None


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, SamplingPolicy(DEFAULT_SAMPLER_RATIO, True)),
        ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio"}, SamplingPolicy(1.0, True)),
        ({"OTEL_TRACES_SAMPLER_ARG": "0.5"}, SamplingPolicy(0.5, True)),
        (
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
            SamplingPolicy(0.25, False),
        ),
        ({"OTEL_TRACES_SAMPLER": "always_on"}, SamplingPolicy(1.0, False)),
        ({"OTEL_TRACES_SAMPLER": "parentbased_always_off"}, SamplingPolicy(0.0, True)),
        (
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "lots"},
            SamplingPolicy(1.0, False),
        ),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, SamplingPolicy(1.0, False)),
    ],
)
def test_the_policy_follows_the_standard_variables(env: dict[str, str], expected: SamplingPolicy) -> None:
    assert SamplingPolicy.from_env(env) == expected


def test_an_unknown_sampler_is_left_to_the_sdk() -> None:
    assert SamplingPolicy.from_env({"OTEL_TRACES_SAMPLER": "jaeger_remote"}) is None


@pytest.mark.parametrize("ratio", [0.0, 0.3, 1.0])
def test_the_lean_decision_is_the_sdk_samplers_decision(ratio: float) -> None:
    """Every span the lean path starts is recording (the SDK sampler agreed on the same trace id),
    and the share of sampled roots is the ratio."""
    tracer, exporter = _tracer(SamplingPolicy(ratio, True))
    random.seed(7)
    started = [tracer.start_span("root", None, {}) for _ in range(2000)]
    sampled = [span for span in started if span is not None]
    assert all(span.is_recording() for span in sampled)
    for span in sampled:
        span.end()
    assert len(exporter.get_finished_spans()) == len(sampled)
    assert abs(len(sampled) / 2000 - ratio) < 0.05


def test_a_sampled_caller_is_continued_and_an_unsampled_one_is_not() -> None:
    tracer, exporter = _tracer(SamplingPolicy(0.0, True))
    span = tracer.start_span("call", VALID, {"rpc.method": "Quote"})
    assert span is not None
    span.end()
    assert tracer.start_span("call", VALID[:-2] + "00", {}) is None
    (finished,) = exporter.get_finished_spans()
    assert finished.context is not None
    assert finished.parent is not None
    assert finished.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert finished.parent.span_id == 0xB7AD6B7169203331
    assert finished.kind is SpanKind.SERVER


def test_a_job_continues_the_trace_stored_on_its_row() -> None:
    tracer, exporter = _tracer(SamplingPolicy(1.0, True))
    rpc = tracer.start_span("rpc", None, {})
    assert rpc is not None
    with use_span(rpc, end_on_exit=True):
        stored = current_traceparent()
    assert stored is not None
    other = "00-11111111111111111111111111111111-2222222222222222-01"
    job = tracer.start_job_span("close period", stored, {"billing.period": "p1"}, links=[other])
    assert job is not None
    job.end()
    rpc_span, job_span = exporter.get_finished_spans()
    assert job_span.context is not None
    assert rpc_span.context is not None
    assert job_span.parent is not None
    assert job_span.context.trace_id == rpc_span.context.trace_id
    assert job_span.parent.span_id == rpc_span.context.span_id
    assert job_span.kind is SpanKind.CONSUMER
    assert [link.context.trace_id for link in job_span.links] == [0x11111111111111111111111111111111]


def test_there_is_no_traceparent_to_store_outside_a_sampled_span() -> None:
    assert current_traceparent() is None


def test_a_provider_that_is_not_the_sdks_starts_nothing() -> None:
    from opentelemetry.trace import NoOpTracerProvider

    assert LeanTracer(NoOpTracerProvider(), SamplingPolicy(1.0, True), "t").start_span("x", VALID, {}) is None
