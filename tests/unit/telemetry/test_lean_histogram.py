"""LeanHistogram: exact buckets, and its points merged into what an SDK reader collects."""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.export import Histogram as SdkHistogramData
from opentelemetry.sdk.resources import Resource

from billing.lean_histogram import LeanHistogram, include_in_collections


def _collected(reader: InMemoryMetricReader) -> dict[str, object]:
    data = reader.get_metrics_data()
    if data is None:
        return {}
    return {m.name: m.data for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}


def _reader(histogram: LeanHistogram, **kwargs: object) -> tuple[InMemoryMetricReader, MeterProvider]:
    reader = InMemoryMetricReader(**kwargs)  # type: ignore[arg-type]
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    include_in_collections(reader, [histogram], Resource.create({}))
    return reader, provider


def test_values_fall_in_opentelemetry_buckets_and_cells_are_reused() -> None:
    histogram = LeanHistogram("d", "s", "", (1.0, 2.0))
    cell = histogram.cell({"m": "a"})
    assert histogram.cell({"m": "a"}) is cell
    for value in (0.5, 1.0, 1.5, 2.0, 3.0):  # (-inf, 1], (1, 2], (2, +inf)
        cell.record(value)
    reader, _ = _reader(histogram)
    data = _collected(reader)["d"]
    assert isinstance(data, SdkHistogramData)
    (point,) = data.data_points
    assert list(point.bucket_counts) == [2, 2, 1]
    assert (point.count, point.sum, point.min, point.max) == (5, 8.0, 0.5, 3.0)
    assert point.attributes == {"m": "a"}
    assert data.aggregation_temporality is AggregationTemporality.CUMULATIVE


def test_lean_points_join_the_sdks_own_metrics() -> None:
    histogram = LeanHistogram("lean", "s", "", (1.0,))
    histogram.cell({}).record(0.1)
    reader, provider = _reader(histogram)
    provider.get_meter("t").create_counter("sdk_counter").add(3)
    assert set(_collected(reader)) == {"lean", "sdk_counter"}


def test_a_reader_that_prefers_delta_gets_what_happened_since_its_last_collection() -> None:
    from opentelemetry.sdk.metrics import Histogram

    histogram = LeanHistogram("d", "s", "", (1.0,))
    cell = histogram.cell({})
    reader, _ = _reader(histogram, preferred_temporality={Histogram: AggregationTemporality.DELTA})
    cell.record(0.5)
    first = _collected(reader)["d"]
    cell.record(2.0)
    cell.record(3.0)
    second = _collected(reader)["d"]
    assert isinstance(first, SdkHistogramData)
    assert isinstance(second, SdkHistogramData)
    assert second.aggregation_temporality is AggregationTemporality.DELTA
    assert list(first.data_points[0].bucket_counts) == [1, 0]
    assert list(second.data_points[0].bucket_counts) == [0, 2]
    assert second.data_points[0].sum == 5.0
    assert "d" not in _collected(reader)  # nothing new: no point
