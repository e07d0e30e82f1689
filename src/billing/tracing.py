"""Spans for the deployables: a lean sampling path, and trace context carried on database rows.

The SDK decides whether to sample only after it has built a span object, and the stock gRPC
instrumentation pays for that object, its context and its attributes on every call
(DESIGN.md §9 measured it at 4.3–5.2k calls/s against 7.4–7.8k bare). :class:`LeanTracer`
decides first, from the caller's ``traceparent`` or a fresh random trace id, and creates a span
only when the call is sampled. It knows the standard samplers (``OTEL_TRACES_SAMPLER``
``always_on``, ``always_off``, ``traceidratio`` and their ``parentbased_`` forms, with
``OTEL_TRACES_SAMPLER_ARG``); for any other sampler it lets the SDK decide, span object and all.

The SDK's sampler is built from the same :class:`SamplingPolicy`, and a root span gets the trace
id the decision was made on (:class:`PresetTraceIds`), so both always agree.

Jobs caused by an RPC (an invoicer close) continue its trace: the RPC stores
:func:`current_traceparent` on the row it writes, and the job starts its span with
:meth:`LeanTracer.start_job_span` from that string.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags
from opentelemetry.util.types import AttributeValue

__all__ = [
    "DEFAULT_SAMPLER",
    "DEFAULT_SAMPLER_RATIO",
    "LeanTracer",
    "PresetTraceIds",
    "SamplingPolicy",
    "current_traceparent",
    "format_traceparent",
    "note_exception",
    "parse_traceparent",
]

# Production samples 1 % of the calls nobody upstream sampled; a caller's sampled traceparent is
# always continued. OTel's own default (parentbased_always_on) would export every quote.
DEFAULT_SAMPLER = "parentbased_traceidratio"
DEFAULT_SAMPLER_RATIO = 0.01
_TRACE_ID_LOW_BITS = (1 << 64) - 1
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class SamplingPolicy:
    """One of the standard samplers: ``ratio`` of root traces, and whether a parent decides."""

    ratio: float
    parent_based: bool

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SamplingPolicy | None:
        """The policy ``OTEL_TRACES_SAMPLER`` names, or None for a sampler we do not know
        (``jaeger_remote``, a plugin): the SDK then builds it and decides by itself."""
        name = env.get("OTEL_TRACES_SAMPLER", "").strip().lower() or DEFAULT_SAMPLER
        parent_based = name.startswith("parentbased_")
        kind = name.removeprefix("parentbased_")
        if kind == "always_on":
            return cls(1.0, parent_based)
        if kind == "always_off":
            return cls(0.0, parent_based)
        if kind != "traceidratio":
            return None
        default = DEFAULT_SAMPLER_RATIO if "OTEL_TRACES_SAMPLER" not in env else 1.0
        try:
            ratio = float(env.get("OTEL_TRACES_SAMPLER_ARG", default))
        except ValueError:
            ratio = default  # the specification's rule for an unparsable argument
        return cls(ratio if 0.0 <= ratio <= 1.0 else default, parent_based)

    def sampler(self) -> Sampler:
        """The SDK sampler that decides exactly as :meth:`LeanTracer.start_span` does."""
        root: Sampler = (
            ALWAYS_ON
            if self.ratio >= 1.0
            else ALWAYS_OFF
            if self.ratio <= 0.0
            else TraceIdRatioBased(self.ratio)
        )
        return ParentBased(root) if self.parent_based else root

    @property
    def bound(self) -> int:
        """A trace id is sampled when its low 64 bits are below this (TraceIdRatioBased's rule)."""
        return TraceIdRatioBased.get_bound_for_rate(self.ratio)


class PresetTraceIds(RandomIdGenerator):
    """Random ids, except that the next root span may take the trace id it was sampled on."""

    def __init__(self) -> None:
        self._next = threading.local()

    def preset(self, trace_id: int) -> None:
        self._next.trace_id = trace_id

    def generate_trace_id(self) -> int:
        trace_id: int | None = getattr(self._next, "trace_id", None)
        if trace_id is None:
            return super().generate_trace_id()
        self._next.trace_id = None
        return trace_id


def parse_traceparent(value: str) -> SpanContext | None:
    """The remote span context of a W3C ``traceparent`` header, or None if it is not valid."""
    # version-traceid-parentid-flags; later versions may append fields after a dash.
    if len(value) < 55 or value[2] != "-" or value[35] != "-" or value[52] != "-":
        return None
    if len(value) > 55 and (value[:2] == "00" or value[55] != "-"):
        return None
    version, trace_hex, span_hex, flags_hex = value[:2], value[3:35], value[36:52], value[53:55]
    if version == "ff" or not _HEX.issuperset(version + trace_hex + span_hex + flags_hex):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(int(flags_hex, 16) & 1))


def format_traceparent(span_context: SpanContext) -> str:
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{int(span_context.trace_flags):02x}"


def current_traceparent() -> str | None:
    """The ``traceparent`` of the current span, to store on a row whose processing it causes.

    None outside a sampled span: the job then samples by itself, as a root would.
    """
    span_context = trace.get_current_span().get_span_context()
    return (
        format_traceparent(span_context)
        if span_context.is_valid and span_context.trace_flags.sampled
        else None
    )


def note_exception(error: BaseException) -> None:
    """Record on the current span (if sampled) that ``error`` escaped: its type, never its message
    or stack, which can hold request data."""
    span = trace.get_current_span()
    if span.is_recording():
        kind = type(error)
        span.add_event("exception", {"exception.type": f"{kind.__module__}.{kind.__qualname__}"})


class LeanTracer:
    """Starts spans only for sampled work; an unsampled call costs a few integer operations."""

    def __init__(self, provider: trace.TracerProvider, policy: SamplingPolicy | None, scope: str) -> None:
        self._tracer = provider.get_tracer(scope)
        ids = getattr(provider, "id_generator", None)
        sdk = isinstance(provider, TracerProvider)
        self.enabled = sdk
        # The lean decision needs both the policy the SDK sampler was built from and the preset ids.
        self._policy = policy if sdk and isinstance(ids, PresetTraceIds) else None
        self._ids = ids if isinstance(ids, PresetTraceIds) else None
        self._bound = policy.bound if policy is not None else 0
        self._random = random.getrandbits

    def start_span(
        self,
        name: str,
        traceparent: str | None,
        attributes: Mapping[str, AttributeValue],
        kind: SpanKind = SpanKind.SERVER,
    ) -> Span | None:
        """A started span (not made current), or None when this work is not sampled."""
        if traceparent is None and self._policy is not None:  # the common case, first
            trace_id = self._random(128) or 1
            if trace_id & _TRACE_ID_LOW_BITS >= self._bound:
                return None
            assert self._ids is not None
            self._ids.preset(trace_id)
            return self._sdk_span(name, None, attributes, kind)
        if not self.enabled:
            return None
        parent = parse_traceparent(traceparent) if traceparent else None
        policy = self._policy
        if policy is None:  # a sampler we do not know: the SDK decides on a span it builds
            return self._sdk_span(name, parent, attributes, kind)
        if parent is not None and policy.parent_based:
            if not parent.trace_flags.sampled:
                return None
            return self._sdk_span(name, parent, attributes, kind)
        if parent is not None:
            if parent.trace_id & _TRACE_ID_LOW_BITS >= self._bound:
                return None
            return self._sdk_span(name, parent, attributes, kind)
        return self.start_span(name, None, attributes, kind)  # an invalid traceparent: a root

    def start_job_span(
        self,
        name: str,
        traceparent: str | None,
        attributes: Mapping[str, AttributeValue] | None = None,
        links: Iterable[str] = (),
    ) -> Span | None:
        """A span for a job, continuing the trace of the RPC that stored ``traceparent``.

        ``links``: traceparents of further causes (a job that aggregates many RPCs' work).
        None when not sampled.
        """
        span = self.start_span(name, traceparent, attributes or {}, SpanKind.CONSUMER)
        if span is not None:
            for link in links:
                parsed = parse_traceparent(link)
                if parsed is not None:
                    span.add_link(parsed)
        return span

    def _sdk_span(
        self,
        name: str,
        parent: SpanContext | None,
        attributes: Mapping[str, AttributeValue],
        kind: SpanKind,
    ) -> Span | None:
        parent_context = (
            trace.set_span_in_context(NonRecordingSpan(parent))
            if parent is not None
            else otel_context.Context()  # a root: never a child of whatever happens to be current
        )
        span = self._tracer.start_span(name, parent_context, kind, attributes)
        return span if span.is_recording() else None
