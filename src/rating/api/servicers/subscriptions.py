"""SubscriptionService."""

from __future__ import annotations

from typing import Any

from billing.domain.errors import InvalidArgument
from billing.v1 import subscription_pb2 as pb
from rating.api.converters import subscriptions as convert
from rating.api.converters.common import convert as checked
from rating.api.converters.invoices import invoice_to_proto as convert_invoice
from rating.api.converters.invoices import lines_to_proto
from rating.api.converters.resources import parse_name
from rating.api.errors import translate_errors
from rating.api.pagination import next_token, page_of
from rating.api.servicers._support import Dependencies, mutate, read
from rating.usecases import subscriptions
from rating.usecases.billing_ports import BillingUnitOfWork

Context = Any


class SubscriptionServicer:
    def __init__(self, deps: Dependencies) -> None:
        self.deps = deps

    @translate_errors
    async def CreateSubscription(
        self, request: pb.CreateSubscriptionRequest, context: Context
    ) -> pb.CreateSubscriptionResponse:
        new, trial_days = convert.new_subscription_from_proto(request)
        catalog, now = self.deps.catalog.current(), self.deps.clock()

        async def build(uow: BillingUnitOfWork) -> pb.CreateSubscriptionResponse:
            row = await subscriptions.create(uow, new, trial_days, catalog, now)
            return pb.CreateSubscriptionResponse(subscription=convert.subscription_to_proto(row))

        return await mutate(self.deps, "CreateSubscription", request, pb.CreateSubscriptionResponse, build)

    @translate_errors
    async def GetSubscription(
        self, request: pb.GetSubscriptionRequest, context: Context
    ) -> pb.GetSubscriptionResponse:
        subscription_id = parse_name(request.name, "subscriptions", "name")

        async def query(uow: BillingUnitOfWork) -> pb.GetSubscriptionResponse:
            row = await uow.subscriptions.get(subscription_id)
            return pb.GetSubscriptionResponse(subscription=convert.subscription_to_proto(row))

        return await read(self.deps, query)

    @translate_errors
    async def ListSubscriptions(
        self, request: pb.ListSubscriptionsRequest, context: Context
    ) -> pb.ListSubscriptionsResponse:
        after, size = page_of(request)
        customer_id = checked("", lambda c: (c.optional_name(request.customer, "customers", "customer"),))[0]
        status = convert.optional_status(request.status)

        async def query(uow: BillingUnitOfWork) -> pb.ListSubscriptionsResponse:
            found = await uow.subscriptions.find(
                customer_id=customer_id, status=status, after=after, limit=size + 1, parked=request.parked
            )
            return pb.ListSubscriptionsResponse(
                subscriptions=[convert.subscription_to_proto(row) for row in found[:size]],
                next_page_token=next_token(found, size),
            )

        return await read(self.deps, query)

    @translate_errors
    async def UpdateSubscription(
        self, request: pb.UpdateSubscriptionRequest, context: Context
    ) -> pb.UpdateSubscriptionResponse:
        subscription_id = parse_name(request.name, "subscriptions", "name")
        change = convert.change_from_proto(
            request.change, request.proration_behavior, convert.optional_instant(request, "proration_time")
        )
        catalog, now = self.deps.catalog.current(), self.deps.clock()

        async def build(uow: BillingUnitOfWork) -> pb.UpdateSubscriptionResponse:
            applied = await subscriptions.change(uow, subscription_id, change, catalog, now)
            response = pb.UpdateSubscriptionResponse(
                subscription=convert.subscription_to_proto(applied.row),
                lines=lines_to_proto(applied.result.lines),
            )
            if applied.invoice_id is not None:
                response.invoice.CopyFrom(convert_invoice(await uow.invoices.get(applied.invoice_id)))
            return response

        return await mutate(self.deps, "UpdateSubscription", request, pb.UpdateSubscriptionResponse, build)

    @translate_errors
    async def PreviewSubscriptionChange(
        self, request: pb.PreviewSubscriptionChangeRequest, context: Context
    ) -> pb.PreviewSubscriptionChangeResponse:
        subscription_id = parse_name(request.name, "subscriptions", "name")
        change = convert.change_from_proto(
            request.change, request.proration_behavior, convert.optional_instant(request, "proration_time")
        )
        catalog, now = self.deps.catalog.current(), self.deps.clock()

        async def query(uow: BillingUnitOfWork) -> pb.PreviewSubscriptionChangeResponse:
            result = await subscriptions.preview_change(uow, subscription_id, change, catalog, now)
            response = pb.PreviewSubscriptionChangeResponse(
                subscription=convert.state_to_proto(result.subscription), lines=lines_to_proto(result.lines)
            )
            instant = next((line.at for line in result.lines if line.at is not None), change.proration_date)
            if instant is not None:
                response.proration_time.FromDatetime(instant)
            return response

        return await read(self.deps, query)

    @translate_errors
    async def CancelSubscription(
        self, request: pb.CancelSubscriptionRequest, context: Context
    ) -> pb.CancelSubscriptionResponse:
        subscription_id = parse_name(request.name, "subscriptions", "name")
        behavior = convert.behavior_from_proto(request.proration_behavior)
        cancel_time = convert.optional_instant(request, "cancel_time")
        if request.at_period_end and cancel_time is not None:
            raise InvalidArgument.single("cancel_time", "is for a cancel now, not at period end")
        catalog, now = self.deps.catalog.current(), self.deps.clock()

        async def build(uow: BillingUnitOfWork) -> pb.CancelSubscriptionResponse:
            applied = await subscriptions.cancel(
                uow,
                subscription_id,
                catalog,
                now,
                at_period_end=request.at_period_end,
                behavior=behavior,
                cancel_time=cancel_time,
            )
            return pb.CancelSubscriptionResponse(
                subscription=convert.subscription_to_proto(applied.row),
                lines=lines_to_proto(applied.result.lines),
            )

        return await mutate(self.deps, "CancelSubscription", request, pb.CancelSubscriptionResponse, build)

    @translate_errors
    async def ScheduleSubscriptionChange(
        self, request: pb.ScheduleSubscriptionChangeRequest, context: Context
    ) -> pb.ScheduleSubscriptionChangeResponse:
        subscription_id = parse_name(request.name, "subscriptions", "name")
        change = (
            convert.change_from_proto(request.change, pb.PRORATION_BEHAVIOR_NONE, None)
            if request.change.ListFields()
            else None
        )
        catalog, now = self.deps.catalog.current(), self.deps.clock()

        async def build(uow: BillingUnitOfWork) -> pb.ScheduleSubscriptionChangeResponse:
            row = await subscriptions.schedule(uow, subscription_id, change, catalog, now)
            return pb.ScheduleSubscriptionChangeResponse(subscription=convert.subscription_to_proto(row))

        return await mutate(
            self.deps, "ScheduleSubscriptionChange", request, pb.ScheduleSubscriptionChangeResponse, build
        )

    @translate_errors
    async def RemoveScheduledCancellation(
        self, request: pb.RemoveScheduledCancellationRequest, context: Context
    ) -> pb.RemoveScheduledCancellationResponse:
        subscription_id = parse_name(request.name, "subscriptions", "name")
        now = self.deps.clock()

        async def build(uow: BillingUnitOfWork) -> pb.RemoveScheduledCancellationResponse:
            row = await subscriptions.remove_cancellation(uow, subscription_id, now)
            return pb.RemoveScheduledCancellationResponse(subscription=convert.subscription_to_proto(row))

        return await mutate(
            self.deps, "RemoveScheduledCancellation", request, pb.RemoveScheduledCancellationResponse, build
        )

    @translate_errors
    async def RetryParkedSubscription(
        self, request: pb.RetryParkedSubscriptionRequest, context: Context
    ) -> pb.RetryParkedSubscriptionResponse:
        subscription_id = parse_name(request.name, "subscriptions", "name")

        async def build(uow: BillingUnitOfWork) -> pb.RetryParkedSubscriptionResponse:
            row = await subscriptions.retry_parked(uow, subscription_id)
            return pb.RetryParkedSubscriptionResponse(subscription=convert.subscription_to_proto(row))

        return await mutate(
            self.deps, "RetryParkedSubscription", request, pb.RetryParkedSubscriptionResponse, build
        )
