"""Usage messages <-> use-case values. Events themselves are read as they are (EventLike)."""

from __future__ import annotations

from collections.abc import Sequence

from billing.v1 import usage_pb2
from rating.api.converters.catalog import read_properties
from rating.api.converters.common import Checker, convert
from rating.api.errors import STATUS_OF
from rating.usecases.usage import BatchResult, Outcome, SummaryQuery

_OUTCOMES = {
    Outcome.ACCEPTED: usage_pb2.USAGE_OUTCOME_ACCEPTED,
    Outcome.DUPLICATE: usage_pb2.USAGE_OUTCOME_DUPLICATE,
    Outcome.REJECTED: usage_pb2.USAGE_OUTCOME_REJECTED,
}


def summary_query_from_proto(msg: usage_pb2.GetUsageSummaryRequest) -> SummaryQuery:
    return convert("", lambda c: _summary(msg, c))


def _summary(msg: usage_pb2.GetUsageSummaryRequest, c: Checker) -> SummaryQuery | None:
    customer_id = c.name(msg.customer, "customers", "customer")
    meter = msg.meter.removeprefix("meters/") if msg.meter.startswith("meters/") else msg.meter
    c.required(meter, "meter")
    filters = read_properties(msg.filters, c, "filters")
    for name in ("start_time", "end_time"):
        if not msg.HasField(name):
            c.add(name, "is required")
    # Through the checker: a timestamp outside years 1-9999 is bad input, not a crash.
    start = c.timestamp(msg.start_time, msg.HasField("start_time"), "start_time")
    end = c.timestamp(msg.end_time, msg.HasField("end_time"), "end_time")
    if start is None or end is None:
        return None
    return SummaryQuery(
        customer_id=customer_id, meter=meter, filters=filters, start=start, end=end, group_by=msg.group_by
    )


def fill_batch_response(
    response: usage_pb2.RecordUsageBatchResponse | usage_pb2.StreamUsageResponse,
    result: BatchResult,
    keys: Sequence[str],
) -> None:
    """The counts and one UsageResult per event, in order; ``keys`` are the events' idempotency
    keys. Results are filled in place with ``add``: building messages and then copying them in
    costs twice as much at 100,000 events a second."""
    response.accepted_count = result.count(Outcome.ACCEPTED)
    response.duplicate_count = result.count(Outcome.DUPLICATE)
    response.rejected_count = result.count(Outcome.REJECTED)
    add = response.results.add
    for index, outcome in enumerate(result.outcomes):
        item = add(index=index, idempotency_key=keys[index], outcome=_OUTCOMES[outcome])
        rejection = result.rejections.get(index) if outcome is Outcome.REJECTED else None
        if rejection is not None:
            item.code = STATUS_OF[rejection.error].value[0]
            item.reason = rejection.reason
            item.field = rejection.field
