"""UsageService: record, stream, cancel and summarise usage events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from billing.domain.decimals import format_decimal
from billing.domain.errors import InvalidArgument
from billing.metrics import record_usage
from billing.v1 import usage_pb2 as pb
from rating.api.converters import usage as convert
from rating.api.converters.common import timestamp_from_datetime
from rating.api.errors import check_decoded, translate_errors, translate_stream_errors
from rating.api.servicers._support import Dependencies
from rating.usecases import subscriptions, usage
from rating.usecases.usage import BatchResult, GroupCommitter, Outcome, UsageStore

Context = Any
# The only two answers RecordUsage gives, encoded once (the registration sends bytes as they are).
_ACCEPTED = pb.RecordUsageResponse(duplicate=False).SerializeToString()
_DUPLICATE = pb.RecordUsageResponse(duplicate=True).SerializeToString()


class UsageServicer:
    def __init__(self, deps: Dependencies, store: UsageStore, committer: GroupCommitter) -> None:
        self.deps = deps
        self.store = store
        self.committer = committer

    @translate_errors
    async def RecordUsage(self, request: pb.RecordUsageRequest, context: Context) -> bytes:
        if not request.HasField("event"):
            raise InvalidArgument.single("event", "is required")
        outcome = await usage.record_one(
            self.committer, self.store, self.deps.catalog, request.event, self.deps.clock()
        )
        duplicate = outcome is Outcome.DUPLICATE
        record_usage(accepted=int(not duplicate), duplicate=int(duplicate), rejected=0)
        return _DUPLICATE if duplicate else _ACCEPTED

    @translate_errors
    async def RecordUsageBatch(
        self, request: pb.RecordUsageBatchRequest, context: Context
    ) -> pb.RecordUsageBatchResponse:
        result = await usage.record_batch(self.store, self.deps.catalog, request.events, self.deps.clock())
        response = pb.RecordUsageBatchResponse()
        _answer(response, result, request.events)
        return response

    @translate_stream_errors
    async def StreamUsage(
        self, requests: AsyncIterator[pb.StreamUsageRequest], context: Context
    ) -> AsyncIterator[pb.StreamUsageResponse]:
        # One batch at a time: the next is read only after this one is committed and answered,
        # so gRPC flow control holds the sender back and memory stays bounded.
        batch = 0
        async for request in requests:
            check_decoded(request)
            result = await usage.record_batch(
                self.store, self.deps.catalog, request.events, self.deps.clock()
            )
            response = pb.StreamUsageResponse(batch=batch)
            _answer(response, result, request.events)
            yield response
            batch += 1

    @translate_errors
    async def CancelUsage(self, request: pb.CancelUsageRequest, context: Context) -> pb.CancelUsageResponse:
        cancelled, occurred_at = await usage.cancel(self.store, request.idempotency_key)
        return pb.CancelUsageResponse(cancelled=cancelled, timestamp=timestamp_from_datetime(occurred_at))

    @translate_errors
    async def GetUsageSummary(
        self, request: pb.GetUsageSummaryRequest, context: Context
    ) -> pb.GetUsageSummaryResponse:
        asked = convert.summary_request_from_proto(request)
        if asked.range is None:
            async with self.deps.read_only() as uow:
                start, end = await subscriptions.open_usage_period(
                    uow, asked.customer_id, asked.subscription_id
                )
        else:
            start, end = asked.range
        totals = await usage.summarize(self.store, self.deps.catalog, asked.query(start, end))
        return pb.GetUsageSummaryResponse(
            groups=[
                pb.UsageGroup(key=t.group, value=format_decimal(t.value), event_count=t.event_count)
                for t in totals
            ],
            start_time=timestamp_from_datetime(start),
            end_time=timestamp_from_datetime(end),
        )


def _answer(
    response: pb.RecordUsageBatchResponse | pb.StreamUsageResponse,
    result: BatchResult,
    events: Sequence[pb.UsageEvent],
) -> None:
    """Fill the answer to one batch and count its outcomes in the usage metrics."""
    convert.fill_batch_response(response, result, [e.idempotency_key for e in events])
    record_usage(response.accepted_count, response.duplicate_count, response.rejected_count)
