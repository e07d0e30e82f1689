"""A histogram for the hot path: recording is a few integer operations on a pre-bound cell.

The SDK's ``Histogram.record`` validates, copies and hashes the attributes of every measurement
and builds a ``Measurement`` object: 13 µs per gRPC call on the quote path, measured inside the
server (3–7 µs in a tight loop). A :class:`LeanHistogram` hands out one :class:`Cell` per
attribute set, once; a call then adds to counters (explicit buckets, sum, count, min, max).

At each collection the cells become standard OpenTelemetry histogram points, added to what the
SDK collected, so every reader and exporter sees an ordinary explicit-bucket histogram
(cumulative, or delta when the reader prefers it). The hook is the reader's collect callback,
an SDK internal: tests/integration/observability reads the histogram through a real reader, so
an SDK upgrade that moves it fails there, not silently.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.metrics._internal.instrument import _Histogram as SdkHistogram
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricReader,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.util.types import AttributeValue

__all__ = ["Cell", "LeanHistogram", "include_in_collections"]

_SCOPE = InstrumentationScope("billing.lean")
_Key = frozenset[tuple[str, AttributeValue]]


class Cell:
    """The running totals of one attribute set. Only the event loop's thread records."""

    __slots__ = ("attributes", "bounds", "count", "counts", "max", "min", "sum")

    def __init__(self, attributes: Mapping[str, AttributeValue], bounds: Sequence[float]) -> None:
        self.attributes = dict(attributes)
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.count = 0
        self.sum = 0.0
        self.min = float("inf")
        self.max = float("-inf")

    def record(self, value: float) -> None:
        # Bucket i holds (bounds[i-1], bounds[i]], OpenTelemetry's explicit-bucket rule.
        self.counts[bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value

    def snapshot(self) -> tuple[list[int], float, float, float]:
        # Read without a lock: a record landing meanwhile shows up complete in the next export.
        return list(self.counts), self.sum, self.min, self.max


class LeanHistogram:
    def __init__(self, name: str, unit: str, description: str, bounds: Sequence[float]) -> None:
        self.name, self.unit, self.description = name, unit, description
        self.bounds = tuple(bounds)
        self._cells: dict[_Key, Cell] = {}
        self._lock = threading.Lock()
        self._start_ns = time.time_ns()
        # Per reader preferring delta: when it last exported, and the totals it saw then.
        self._last: dict[int, tuple[int, dict[_Key, tuple[list[int], float]]]] = {}

    def cell(self, attributes: Mapping[str, AttributeValue]) -> Cell:
        """The cell for ``attributes``, the same one every time: bind it once, record many."""
        key = frozenset(attributes.items())
        with self._lock:
            found = self._cells.get(key)
            if found is None:
                found = self._cells[key] = Cell(attributes, self.bounds)
            return found

    def metric(self, now_ns: int, reader_id: int, delta: bool) -> Metric | None:
        with self._lock:
            cells = list(self._cells.items())
        points = []
        start_ns, previous = self._last.get(reader_id, (self._start_ns, {}))
        current: dict[_Key, tuple[list[int], float]] = {}
        for key, cell in cells:
            counts, total, low, high = cell.snapshot()
            current[key] = (counts, total)
            if delta:
                before, total_before = previous.get(key, ([0] * len(counts), 0.0))
                counts = [now - then for now, then in zip(counts, before, strict=True)]
                total -= total_before
            count = sum(counts)
            if count == 0:
                continue
            # A delta point's min and max are those of the whole run (the cell keeps no history);
            # buckets, counts and sums, what percentiles and rates come from, are exact.
            points.append(
                HistogramDataPoint(
                    attributes=cell.attributes,
                    start_time_unix_nano=start_ns if delta else self._start_ns,
                    time_unix_nano=now_ns,
                    count=count,
                    sum=total,
                    bucket_counts=counts,
                    explicit_bounds=self.bounds,
                    min=low,
                    max=high,
                )
            )
        if delta:
            self._last[reader_id] = (now_ns, current)
        if not points:
            return None
        temporality = AggregationTemporality.DELTA if delta else AggregationTemporality.CUMULATIVE
        return Metric(self.name, self.description, self.unit, Histogram(points, temporality))


def include_in_collections(
    reader: MetricReader, histograms: Sequence[LeanHistogram], resource: Resource
) -> None:
    """Make ``reader``'s collections (and so its exports) include ``histograms``."""
    collect: Any = reader._collect
    if collect is None:
        raise RuntimeError("the reader is not registered on a MeterProvider")
    # The reader's preference, as the SDK stores it (keyed by its internal instrument class).
    preferred: Any = getattr(reader, "_instrument_class_temporality", {})
    delta = preferred.get(SdkHistogram) is AggregationTemporality.DELTA

    def collect_with_lean(*args: Any, **kwargs: Any) -> MetricsData | None:
        collected: MetricsData | None = collect(*args, **kwargs)
        now_ns = time.time_ns()
        metrics = [m for m in (h.metric(now_ns, id(reader), delta) for h in histograms) if m is not None]
        if not metrics:
            return collected
        lean = ScopeMetrics(_SCOPE, metrics, "")
        if collected is None or not collected.resource_metrics:
            return MetricsData([ResourceMetrics(resource, [lean], "")])
        first, *rest = collected.resource_metrics
        merged = ResourceMetrics(first.resource, [*first.scope_metrics, lean], first.schema_url)
        return MetricsData([merged, *rest])

    reader._set_collect_callback(collect_with_lean)  # type: ignore[arg-type]
