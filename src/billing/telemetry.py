"""Logs, traces and metrics for both deployables (DESIGN.md §8), set up once per process.

Logs: structlog, one JSON object per line in production, a readable console format locally
(``BILLING_LOG_FORMAT=json|console``; JSON when stderr is not a terminal). Every line written
during a call or job carries its ``request_id``, ``trace_id`` and ``span_id``; the standard
library's loggers (grpc, asyncio) go through the same processors. Secrets and personal data are
kept out by :mod:`billing.redaction`.

Traces and metrics: OpenTelemetry, configured only by the standard environment variables.
``OTEL_TRACES_EXPORTER`` and ``OTEL_METRICS_EXPORTER`` name exporters (``otlp``, ``console``,
``none``, or any installed exporter plugin, comma-separated) and default to ``none`` here, so a
laptop exports nothing until asked; the ``OTEL_EXPORTER_OTLP_*`` variables configure OTLP, and
``OTEL_SERVICE_NAME``/``OTEL_RESOURCE_ATTRIBUTES`` the resource. Sampling is described in
:mod:`billing.tracing`. ``OTEL_SDK_DISABLED=true`` switches both off. Even with no exporter the
SDK providers are installed, so spans and measurements cost what they cost in production.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import structlog
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from billing.lean_histogram import include_in_collections
from billing.metrics import instruments
from billing.redaction import redact, sanitize_exception
from billing.request_context import current_request
from billing.tracing import LeanTracer, PresetTraceIds, SamplingPolicy

__all__ = ["Telemetry", "configure_logging", "configure_telemetry", "lean_tracer"]

_log = structlog.get_logger(__name__)


def add_request_ids(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the ids of the current call or job, when there is one."""
    span_context = trace.get_current_span().get_span_context()
    request = current_request()
    if span_context.is_valid:
        event_dict["trace_id"] = f"{span_context.trace_id:032x}"
        event_dict["span_id"] = f"{span_context.span_id:016x}"
    elif request is not None:
        event_dict["trace_id"] = request.trace_id
        event_dict["span_id"] = request.span_id
    if request is not None:
        event_dict["request_id"] = request.request_id
    return event_dict


def configure_logging(*, json_logs: bool | None = None, level: str | None = None) -> None:
    """Configure structlog, and route the standard library's logging through it."""
    if json_logs is None:
        chosen = os.environ.get("BILLING_LOG_FORMAT", "").lower()
        json_logs = chosen == "json" or (chosen != "console" and not sys.stderr.isatty())
    level_name = (level or os.environ.get("BILLING_LOG_LEVEL", "INFO")).upper()
    level_number = logging.getLevelNamesMapping()[level_name]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer()
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_request_ids,
        sanitize_exception,
        redact,
    ]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level_number),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(level_number, logging.INFO))  # libraries' DEBUG output could echo payloads


@dataclass
class Telemetry:
    """The providers this process exports through; ``shutdown`` flushes what is buffered."""

    tracer_provider: trace.TracerProvider
    meter_provider: metrics.MeterProvider
    policy: SamplingPolicy | None
    _shutdowns: list[Callable[[], Any]] = field(default_factory=list)

    def shutdown(self) -> None:
        for shutdown in self._shutdowns:
            try:
                shutdown()
            except Exception as error:  # an unreachable collector must not fail the exit
                _log.warning("telemetry shutdown failed", error=type(error).__name__)
        self._shutdowns.clear()


_configured: Telemetry | None = None


def configure_telemetry(
    service_name: str,
    env: Mapping[str, str] | None = None,
    *,
    span_processors: Sequence[SpanProcessor] = (),
    metric_readers: Sequence[MetricReader] = (),
) -> Telemetry:
    """Install the global tracer and meter providers from the OTEL_* variables, once per process.

    ``span_processors`` and ``metric_readers`` are added to those the environment asks for
    (tests read spans and metrics in memory through them).
    """
    global _configured
    if _configured is not None:
        return _configured
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        _configured = Telemetry(trace.get_tracer_provider(), metrics.get_meter_provider(), None)
        return _configured
    resource = _resource(service_name)
    policy = SamplingPolicy.from_env(env)
    # An unknown sampler name: the SDK reads OTEL_TRACES_SAMPLER itself (plugins included).
    tracer_provider = TracerProvider(
        sampler=policy.sampler() if policy is not None else None,
        resource=resource,
        id_generator=PresetTraceIds(),
        shutdown_on_exit=False,
    )
    for processor in span_processors:
        tracer_provider.add_span_processor(processor)
    for exporter in _exporters(env, "OTEL_TRACES_EXPORTER", "opentelemetry_traces_exporter"):
        tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    readers = list(metric_readers)
    for exporter in _exporters(env, "OTEL_METRICS_EXPORTER", "opentelemetry_metrics_exporter"):
        # A pull exporter (Prometheus) is a reader already; a push exporter needs one.
        readers.append(
            exporter if isinstance(exporter, MetricReader) else PeriodicExportingMetricReader(exporter)
        )
    meter_provider = MeterProvider(metric_readers=readers, resource=resource, shutdown_on_exit=False)
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    lean = [instruments().rpc_duration, instruments().close_duration]
    for reader in readers:
        include_in_collections(reader, lean, resource)
    _configured = Telemetry(
        tracer_provider, meter_provider, policy, [tracer_provider.shutdown, meter_provider.shutdown]
    )
    return _configured


def lean_tracer(scope: str) -> LeanTracer:
    """A :class:`LeanTracer` on the configured provider (tracing off if none was configured)."""
    configured = _configured
    if configured is None:
        return LeanTracer(trace.get_tracer_provider(), None, scope)
    return LeanTracer(configured.tracer_provider, configured.policy, scope)


def _resource(service_name: str) -> Resource:
    """OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES when given, else ``service_name``."""
    detected = Resource.create({})
    if str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        return detected.merge(Resource({SERVICE_NAME: service_name}))
    return detected


def _exporters(env: Mapping[str, str], variable: str, group: str) -> list[Any]:
    """Exporters named by ``variable``, found by the entry points their packages register.

    ``otlp`` means OTLP over the protocol ``OTEL_EXPORTER_OTLP_[SIGNAL_]PROTOCOL`` names
    (``grpc`` by default, the one installed), as in the SDK's own configurator.
    """
    names = [name.strip() for name in env.get(variable, "none").split(",") if name.strip()]
    signal = variable.removeprefix("OTEL_").removesuffix("_EXPORTER")
    protocol = env.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL") or env.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"
    )
    found: list[Any] = []
    for name in names:
        if name == "none":
            continue
        if name == "otlp":
            name = "otlp_proto_http" if protocol.strip().startswith("http") else "otlp_proto_grpc"
        matches = entry_points(group=group, name=name)
        if not matches:
            raise ValueError(f"{variable}={name}: no such exporter installed (group {group})")
        exporter_class = next(iter(matches)).load()
        found.append(exporter_class())
    return found
