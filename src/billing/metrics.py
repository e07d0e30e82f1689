"""Every metric the deployables record, defined in one place (OpenTelemetry metrics API).

Names follow the OpenTelemetry semantic conventions where one exists (``rpc.server.call.duration``
in seconds, whose count is the call count) and ``billing.*`` otherwise. Attribute sets are
built once and reused (the ``*_OUTCOMES`` constants). The SDK copies, cleans and hashes the
attributes of every measurement (3–7 µs in a loop, 13 µs inside the server, SDK 1.45), so the
per-call histogram is a :class:`~billing.lean_histogram.LeanHistogram` with one pre-bound cell
per method and status, usage counters record once per batch, never per event, and the
invoicer's per-job measurements are a LeanHistogram and plain integers read by an observable
counter (:class:`JobMetrics`).

The alerts built on these are in docs/runbook.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Counter, Meter, Observation

from billing.lean_histogram import LeanHistogram

__all__ = [
    "CLOSE_OUTCOMES",
    "DURATION_BUCKETS_S",
    "JOB_ACTIONS",
    "USAGE_OUTCOMES",
    "GaugeValue",
    "Instruments",
    "JobMetrics",
    "OutcomeCounts",
    "instruments",
    "record_usage",
]

# Seconds; from a cached quote (sub-millisecond) to a period close that waited on a lock.
DURATION_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

USAGE_OUTCOMES = {
    outcome: MappingProxyType({"outcome": outcome}) for outcome in ("accepted", "duplicate", "rejected")
}
"""``billing.usage.events`` attributes: accepted (new), duplicate (a replayed key), rejected."""

CLOSE_OUTCOMES = {
    outcome: MappingProxyType({"outcome": outcome})
    for outcome in ("closed", "finalized", "released", "retried", "parked")
}
"""``billing.invoicer.periods.closed`` attributes, one per job (one claimed subscription, one
action): its boundary was closed (a draft written, or nothing to invoice); its draft was
finalized; its lease was given back without a write (nothing was due, the subscription changed
under the job, the lease was lost, or the job was cancelled at shutdown); the job failed and will
be retried; the subscription was parked for a person."""

JOB_ACTIONS = ("close", "finalize", "none")
"""What a job set out to do (``invoicer.usecases.periods.Action``)."""

_JOB_ATTRIBUTES = {
    (action, outcome): MappingProxyType({"action": action, "outcome": outcome})
    for action in JOB_ACTIONS
    for outcome in CLOSE_OUTCOMES
}


class GaugeValue:
    """The last value of a gauge, set by whoever measures it and read at each export."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: int | None = None

    def set(self, value: int) -> None:
        self.value = value

    def observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        return () if self.value is None else (Observation(self.value),)


class OutcomeCounts:
    """A monotonic count per outcome, kept as plain integers and reported by an observable
    counter at each collection: the SDK's ``Counter.add`` costs about 7 µs per call (measured,
    SDK 1.45, a reader installed), an increment here a fraction of one. Only the event loop's
    thread adds; the exporter's thread reads, at worst one increment behind."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts = dict.fromkeys(CLOSE_OUTCOMES, 0)

    def add(self, outcome: str) -> None:
        self.counts[outcome] += 1

    def observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(count, CLOSE_OUTCOMES[outcome]) for outcome, count in self.counts.items() if count
        ]


@dataclass(frozen=True)
class Instruments:
    rpc_duration: LeanHistogram
    """rpc.server.call.duration: each gRPC call, by rpc.method and rpc.grpc.status_code
    (a LeanHistogram: recorded on every call, so it bypasses the SDK's per-measurement cost)."""
    usage_events: Counter
    """billing.usage.events: usage events answered, by outcome (USAGE_OUTCOMES)."""
    periods_closed: OutcomeCounts
    """billing.invoicer.periods.closed: invoicer jobs, by outcome (CLOSE_OUTCOMES); an
    observable counter over plain integers."""
    close_duration: LeanHistogram
    """billing.invoicer.close.duration: one job, from its start (just after the claim) to its
    commit or its bookkeeping write, by action and outcome (a LeanHistogram, as rpc_duration)."""
    queue_depth: GaugeValue
    """billing.invoicer.queue.depth: subscriptions a claim would take now (due, not leased, not
    backing off, not parked); sampled by each worker, the same global count from each."""
    parked_subscriptions: GaugeValue
    """billing.invoicer.parked.subscriptions: subscriptions parked, awaiting a person (global)."""
    lease_expirations: Counter
    """billing.invoicer.lease.expirations: this worker's jobs whose fenced write was refused
    because their lease had run out (a worker killed outright is not counted: it is dead)."""

    @classmethod
    def create(cls, meter: Meter) -> Instruments:
        queue_depth, parked, periods_closed = GaugeValue(), GaugeValue(), OutcomeCounts()
        meter.create_observable_counter(
            "billing.invoicer.periods.closed",
            [periods_closed.observe],
            unit="{job}",
            description="Invoicer jobs (one action on one claimed subscription), by outcome",
        )
        meter.create_observable_gauge(
            "billing.invoicer.queue.depth",
            [queue_depth.observe],
            unit="{period}",
            description="Billing periods due and not yet closed",
        )
        meter.create_observable_gauge(
            "billing.invoicer.parked.subscriptions",
            [parked.observe],
            unit="{subscription}",
            description="Subscriptions parked with a reason, awaiting a person",
        )
        return cls(
            rpc_duration=LeanHistogram(
                "rpc.server.call.duration",
                "s",
                "Duration of gRPC calls handled by this server",
                DURATION_BUCKETS_S,
            ),
            usage_events=meter.create_counter(
                "billing.usage.events", unit="{event}", description="Usage events answered, by outcome"
            ),
            periods_closed=periods_closed,
            close_duration=LeanHistogram(
                "billing.invoicer.close.duration",
                "s",
                "Duration of one invoicer job, by action and outcome",
                DURATION_BUCKETS_S,
            ),
            queue_depth=queue_depth,
            parked_subscriptions=parked,
            lease_expirations=meter.create_counter(
                "billing.invoicer.lease.expirations",
                unit="{lease}",
                description="Jobs whose fenced write was refused because their lease had expired",
            ),
        )


_instruments: Instruments | None = None


def instruments() -> Instruments:
    """The process's instruments, on the global meter provider.

    Created at first use; before ``configure_telemetry`` they are the API's proxies, which start
    recording once a provider is installed.
    """
    global _instruments
    if _instruments is None:
        _instruments = Instruments.create(metrics.get_meter("billing"))
    return _instruments


def record_usage(accepted: int, duplicate: int, rejected: int) -> None:
    """Count the outcomes of one answered batch (one measurement per outcome, not per event)."""
    counter = instruments().usage_events
    for outcome, count in (("accepted", accepted), ("duplicate", duplicate), ("rejected", rejected)):
        if count:
            counter.add(count, USAGE_OUTCOMES[outcome])


class JobMetrics:
    """What an invoicer worker records about each job: its outcome and its duration when it
    ends, and a lost lease. No query and no allocation: an integer increment and a pre-bound
    histogram cell (well under a microsecond, against ~14 µs through the SDK's instruments).
    Injected into the worker, so a test can give it instruments of its own."""

    __slots__ = ("_cells", "_closed", "_expired")

    def __init__(self, metrics: Instruments | None = None) -> None:
        metrics = metrics or instruments()
        self._closed = metrics.periods_closed
        self._cells = {
            key: metrics.close_duration.cell(attributes) for key, attributes in _JOB_ATTRIBUTES.items()
        }
        self._expired = metrics.lease_expirations

    @staticmethod
    def started() -> float:
        return time.perf_counter()

    def finished(self, action: str, outcome: str, started: float) -> None:
        """``action`` one of JOB_ACTIONS, ``outcome`` a key of CLOSE_OUTCOMES."""
        self._cells[(action, outcome)].record(time.perf_counter() - started)
        self._closed.add(outcome)

    def lease_expired(self) -> None:
        self._expired.add(1)
