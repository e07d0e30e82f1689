"""Subscriptions through the real server, with the invoicer closing their periods on a test clock.

Amounts by hand: a seat is 30.00 USD a month; January has 31 days, so a change on Jan 16 at
00:00 prorates 16/31 of the period.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import grpc

from billing.v1 import catalog_pb2 as pb_catalog
from billing.v1 import (
    catalog_pb2_grpc,
    customer_pb2_grpc,
    invoice_pb2,
    invoice_pb2_grpc,
    subscription_pb2_grpc,
    test_clock_pb2,
    test_clock_pb2_grpc,
    usage_pb2,
    usage_pb2_grpc,
)
from billing.v1 import customer_pb2 as pb_customer
from billing.v1 import subscription_pb2 as pb
from rating.server import RunningServer
from tests.integration.api import builders
from tests.integration.api.billing_world import SEAT, World, advance, drain, stamp, world
from tests.integration.api.rpc import failure, field_violations, request_id
from tests.integration.api.test_quote_api import caught_up

Subs = subscription_pb2_grpc.SubscriptionServiceStub
Invoices = invoice_pb2_grpc.InvoiceServiceStub
Catalog = catalog_pb2_grpc.CatalogServiceStub
Customers = customer_pb2_grpc.CustomerServiceStub
Clocks = test_clock_pb2_grpc.TestClockServiceStub
JAN_16 = datetime(2030, 1, 16, tzinfo=UTC)


async def _subscribed(
    subs: Subs, catalog: Catalog, customers: Customers, clocks: Clocks, server: RunningServer, url: str
) -> tuple[World, pb.Subscription]:
    """Two seats from Jan 1, first invoice closed and finalized by the invoicer."""
    w = await world(catalog, customers, clocks)
    await caught_up(server, url)
    created = await subs.CreateSubscription(
        pb.CreateSubscriptionRequest(
            subscription=pb.Subscription(customer=w.customer, plan=w.plan, seats="2"), request_id=request_id()
        )
    )
    await drain(url, server.cache.current)
    return w, created.subscription


async def _invoices(invoices: Invoices, customer: str) -> list[invoice_pb2.Invoice]:
    return list((await invoices.ListInvoices(invoice_pb2.ListInvoicesRequest(customer=customer))).invoices)


async def test_a_change_applied_after_its_preview_at_the_same_pinned_time_gives_the_same_lines(
    subscription_stub: Subs,
    invoice_stub: Invoices,
    catalog_stub: Catalog,
    customer_stub: Customers,
    clock_stub: Clocks,
    rating_server: RunningServer,
    migrated_url: str,
) -> None:
    w, sub = await _subscribed(
        subscription_stub, catalog_stub, customer_stub, clock_stub, rating_server, migrated_url
    )
    assert sub.status == pb.SUBSCRIPTION_STATUS_ACTIVE
    first = await _invoices(invoice_stub, w.customer)
    assert [(i.status, i.total) for i in first] == [(invoice_pb2.INVOICE_STATUS_OPEN, 2 * SEAT)]
    await advance(clock_stub, w.clock, JAN_16)
    change = pb.SubscriptionChange(seats="5")
    preview = await subscription_stub.PreviewSubscriptionChange(
        pb.PreviewSubscriptionChangeRequest(name=sub.name, change=change, proration_time=stamp(JAN_16))
    )
    applied = await subscription_stub.UpdateSubscription(
        pb.UpdateSubscriptionRequest(
            name=sub.name, change=change, proration_time=stamp(JAN_16), request_id=request_id()
        )
    )
    assert list(applied.lines) == list(preview.lines)
    # Credit 16/31 of the 60.00 paid, debit 16/31 of 150.00; each rounded once.
    assert [(line.type, line.amount) for line in applied.lines] == [
        (invoice_pb2.INVOICE_LINE_TYPE_PRORATION_CREDIT, -3097),  # 6000 x 16/31 = 3096.77
        (invoice_pb2.INVOICE_LINE_TYPE_PRORATION_DEBIT, 7742),  # 15000 x 16/31 = 7741.94
    ]
    assert applied.lines[1].proration_factor == invoice_pb2.Fraction(numerator=16, denominator=31)
    assert applied.subscription.seats == "5" == preview.subscription.seats
    # The preview stored nothing; the change stored its lines for the next invoice.
    upcoming = (
        await invoice_stub.PreviewInvoice(invoice_pb2.PreviewInvoiceRequest(subscription=sub.name))
    ).invoice
    assert [line.amount for line in upcoming.lines] == [5 * SEAT, -3097, 7742]


async def test_a_retried_create_returns_the_first_subscription_and_creates_nothing_new(
    subscription_stub: Subs,
    catalog_stub: Catalog,
    customer_stub: Customers,
    clock_stub: Clocks,
    rating_server: RunningServer,
    migrated_url: str,
) -> None:
    w = await world(catalog_stub, customer_stub, clock_stub)
    await caught_up(rating_server, migrated_url)
    request = pb.CreateSubscriptionRequest(
        subscription=pb.Subscription(customer=w.customer, plan=w.plan), request_id=request_id()
    )
    first = await subscription_stub.CreateSubscription(request)
    again = await subscription_stub.CreateSubscription(request)
    assert again == first
    listed = await subscription_stub.ListSubscriptions(pb.ListSubscriptionsRequest(customer=w.customer))
    assert [s.name for s in listed.subscriptions] == [first.subscription.name]


async def test_cancel_at_period_end_keeps_billing_until_then_and_cancel_now_credits_unused_time(
    subscription_stub: Subs,
    invoice_stub: Invoices,
    catalog_stub: Catalog,
    customer_stub: Customers,
    clock_stub: Clocks,
    rating_server: RunningServer,
    migrated_url: str,
) -> None:
    _, sub = await _subscribed(
        subscription_stub, catalog_stub, customer_stub, clock_stub, rating_server, migrated_url
    )
    at_end = await subscription_stub.CancelSubscription(
        pb.CancelSubscriptionRequest(name=sub.name, at_period_end=True, request_id=request_id())
    )
    assert at_end.subscription.cancel_at_period_end
    assert at_end.subscription.end_time.ToDatetime(tzinfo=UTC) == datetime(2030, 2, 1, tzinfo=UTC)
    assert list(at_end.lines) == []

    w2, sub2 = await _subscribed(
        subscription_stub, catalog_stub, customer_stub, clock_stub, rating_server, migrated_url
    )
    await advance(clock_stub, w2.clock, JAN_16)
    now = await subscription_stub.CancelSubscription(
        pb.CancelSubscriptionRequest(name=sub2.name, cancel_time=stamp(JAN_16), request_id=request_id())
    )
    assert [line.amount for line in now.lines] == [-3097]
    await drain(migrated_url, rating_server.cache.current)
    final = await _invoices(invoice_stub, w2.customer)
    assert [i.total for i in final] == [2 * SEAT, -3097]
    assert final[1].reason == invoice_pb2.INVOICE_REASON_SUBSCRIPTION_CANCEL
    after = (await subscription_stub.GetSubscription(pb.GetSubscriptionRequest(name=sub2.name))).subscription
    assert after.status == pb.SUBSCRIPTION_STATUS_CANCELED
    error = await failure(
        subscription_stub.UpdateSubscription(
            pb.UpdateSubscriptionRequest(
                name=sub2.name, change=pb.SubscriptionChange(seats="3"), request_id=request_id()
            )
        )
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_a_withdrawn_cancel_at_period_end_renews_and_an_ended_one_cannot_be_withdrawn(
    subscription_stub: Subs,
    invoice_stub: Invoices,
    catalog_stub: Catalog,
    customer_stub: Customers,
    clock_stub: Clocks,
    rating_server: RunningServer,
    migrated_url: str,
) -> None:
    w, sub = await _subscribed(
        subscription_stub, catalog_stub, customer_stub, clock_stub, rating_server, migrated_url
    )
    cancel = pb.CancelSubscriptionRequest(name=sub.name, at_period_end=True, request_id=request_id())
    await subscription_stub.CancelSubscription(cancel)
    await advance(clock_stub, w.clock, JAN_16)
    remove = pb.RemoveScheduledCancellationRequest(name=sub.name, request_id=request_id())
    resumed = await subscription_stub.RemoveScheduledCancellation(remove)
    assert not resumed.subscription.cancel_at_period_end
    assert not resumed.subscription.HasField("end_time")
    assert await subscription_stub.RemoveScheduledCancellation(remove) == resumed  # a retry
    await advance(clock_stub, w.clock, datetime(2030, 2, 1, tzinfo=UTC))
    await drain(migrated_url, rating_server.cache.current)
    # January's two seats, then February's: it renewed.
    assert [i.total for i in await _invoices(invoice_stub, w.customer)] == [2 * SEAT, 2 * SEAT]
    got = await subscription_stub.GetSubscription(pb.GetSubscriptionRequest(name=sub.name))
    assert got.subscription.status == pb.SUBSCRIPTION_STATUS_ACTIVE

    # Canceled at the end of February, and that end has come: too late to withdraw.
    await subscription_stub.CancelSubscription(
        pb.CancelSubscriptionRequest(name=sub.name, at_period_end=True, request_id=request_id())
    )
    await advance(clock_stub, w.clock, datetime(2030, 3, 1, tzinfo=UTC))
    late = await failure(
        subscription_stub.RemoveScheduledCancellation(
            pb.RemoveScheduledCancellationRequest(name=sub.name, request_id=request_id())
        )
    )
    assert late.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_bad_subscription_requests_name_every_bad_field(
    subscription_stub: Subs, invoice_stub: Invoices
) -> None:
    error = await failure(
        subscription_stub.CreateSubscription(
            pb.CreateSubscriptionRequest(
                subscription=pb.Subscription(seats="-1", billing_cycle_anchor=9),
                trial_days=-2,
                request_id=request_id(),
            )
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) >= {
        "subscription.customer",
        "subscription.plan",
        "subscription.seats",
        "subscription.billing_cycle_anchor",
        "trial_days",
    }
    error = await failure(
        subscription_stub.UpdateSubscription(
            pb.UpdateSubscriptionRequest(name="subscriptions/sub_x", request_id=request_id())
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "change" in field_violations(error)
    error = await failure(
        subscription_stub.GetSubscription(pb.GetSubscriptionRequest(name="subscriptions/sub_x"))
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    error = await failure(
        invoice_stub.PreviewInvoice(invoice_pb2.PreviewInvoiceRequest(subscription="subscriptions/sub_x"))
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_a_clock_is_advancing_until_the_invoicer_has_closed_its_periods(
    subscription_stub: Subs,
    catalog_stub: Catalog,
    customer_stub: Customers,
    clock_stub: Clocks,
    rating_server: RunningServer,
    migrated_url: str,
) -> None:
    w, sub = await _subscribed(
        subscription_stub, catalog_stub, customer_stub, clock_stub, rating_server, migrated_url
    )
    advanced = await clock_stub.AdvanceTestClock(
        test_clock_pb2.AdvanceTestClockRequest(
            name=w.clock, frozen_time=stamp(datetime(2030, 3, 2, tzinfo=UTC)), request_id=request_id()
        )
    )
    assert advanced.test_clock.status == test_clock_pb2.TEST_CLOCK_STATUS_ADVANCING
    await drain(migrated_url, rating_server.cache.current)
    ready = await clock_stub.GetTestClock(test_clock_pb2.GetTestClockRequest(name=w.clock))
    assert ready.test_clock.status == test_clock_pb2.TEST_CLOCK_STATUS_READY
    # Feb 1 and Mar 1 closed: three invoices of two seats each.
    connection = await asyncpg.connect(migrated_url)
    try:
        count = await connection.fetchval(
            "SELECT count(*) FROM invoices WHERE subscription_id = $1", sub.name.split("/")[1]
        )
    finally:
        await connection.close()
    assert count == 3


async def test_the_usage_summary_defaults_to_the_open_period_and_equals_what_its_invoice_bills(
    subscription_stub: Subs,
    invoice_stub: Invoices,
    catalog_stub: Catalog,
    customer_stub: Customers,
    clock_stub: Clocks,
    usage_stub: usage_pb2_grpc.UsageServiceStub,
    rating_server: RunningServer,
    migrated_url: str,
) -> None:
    """A plan of one 30.00 seat and WhatsApp messages at 0.10 each; January's usage on a test
    clock: 7 + 5 WhatsApp messages and 100 emails (not priced)."""
    w = await world(catalog_stub, customer_stub, clock_stub)
    product = await builders.product(catalog_stub, "Messages")
    meter = await builders.meter(catalog_stub, dimensions=("channel",))
    whatsapp = pb_catalog.PropertyFilter(key="channel", value="whatsapp")
    per_message = await builders.price(
        catalog_stub,
        builders.per_unit(
            product.name, "10", usage=pb_catalog.UsagePricing(meter=meter.name, filters=[whatsapp])
        ),
    )
    plan = await catalog_stub.CreatePlan(
        pb_catalog.CreatePlanRequest(
            plan=pb_catalog.Plan(
                display_name="Chat", seat_price=w.seat_price, usage_prices=[per_message.name]
            ),
            request_id=request_id(),
        )
    )
    await caught_up(rating_server, migrated_url)
    created = await subscription_stub.CreateSubscription(
        pb.CreateSubscriptionRequest(
            subscription=pb.Subscription(customer=w.customer, plan=plan.plan.name, seats="1"),
            request_id=request_id(),
        )
    )
    await drain(migrated_url, rating_server.cache.current)
    await advance(clock_stub, w.clock, JAN_16)

    def event(day: int, channel: str, value: str) -> usage_pb2.UsageEvent:
        return usage_pb2.UsageEvent(
            idempotency_key=request_id(), customer=w.customer, event_name=meter.event_name,
            timestamp=stamp(datetime(2030, 1, day, tzinfo=UTC)), properties={"channel": channel}, value=value,
        )  # fmt: skip

    sent = await usage_stub.RecordUsageBatch(
        usage_pb2.RecordUsageBatchRequest(
            events=[event(5, "whatsapp", "7"), event(15, "whatsapp", "5"), event(10, "email", "100")]
        )
    )
    assert sent.accepted_count == 3
    summary = await usage_stub.GetUsageSummary(
        usage_pb2.GetUsageSummaryRequest(customer=w.customer, meter=meter.name, filters=[whatsapp])
    )
    assert [(g.value, g.event_count) for g in summary.groups] == [("12", 2)]
    assert (summary.start_time, summary.end_time) == (
        stamp(datetime(2030, 1, 1, tzinfo=UTC)),
        stamp(datetime(2030, 2, 1, tzinfo=UTC)),
    )
    by_channel = await usage_stub.GetUsageSummary(
        usage_pb2.GetUsageSummaryRequest(
            customer=w.customer, meter=meter.name, group_by="channel", subscription=created.subscription.name
        )
    )
    assert [(g.key, g.value) for g in by_channel.groups] == [("email", "100"), ("whatsapp", "12")]

    await advance(clock_stub, w.clock, datetime(2030, 2, 1, tzinfo=UTC))
    await drain(migrated_url, rating_server.cache.current)
    february = (await _invoices(invoice_stub, w.customer))[-1]
    usage_line = next(line for line in february.lines if line.price == per_message.name)
    # What support saw is what the invoice bills: 12 messages x 0.10 = 1.20.
    assert (usage_line.quantity, usage_line.amount) == ("12", 120)

    # Without a subscription there is no open period to default to; half a range is not one.
    lonely = await customer_stub.CreateCustomer(
        pb_customer.CreateCustomerRequest(
            customer=pb_customer.Customer(display_name="No Subs", currency="USD"), request_id=request_id()
        )
    )
    none = await failure(
        usage_stub.GetUsageSummary(
            usage_pb2.GetUsageSummaryRequest(customer=lonely.customer.name, meter=meter.name)
        )
    )
    assert none.code() == grpc.StatusCode.FAILED_PRECONDITION
    half = await failure(
        usage_stub.GetUsageSummary(
            usage_pb2.GetUsageSummaryRequest(customer=w.customer, meter=meter.name, start_time=stamp(JAN_16))
        )
    )
    assert set(field_violations(half)) == {"end_time"}


async def test_support_finds_a_parked_subscription_and_puts_it_back_in_the_invoicers_queue(
    subscription_stub: Subs,
    invoice_stub: Invoices,
    catalog_stub: Catalog,
    customer_stub: Customers,
    clock_stub: Clocks,
    rating_server: RunningServer,
    migrated_url: str,
) -> None:
    w = await world(catalog_stub, customer_stub, clock_stub)
    await caught_up(rating_server, migrated_url)
    created = await subscription_stub.CreateSubscription(
        pb.CreateSubscriptionRequest(
            subscription=pb.Subscription(customer=w.customer, plan=w.plan, seats="2"), request_id=request_id()
        )
    )
    sub = created.subscription
    # What the invoicer does when a close cannot be billed as it stands (tested in
    # tests/integration/invoicer): here, before its first close.
    connection = await asyncpg.connect(migrated_url)
    try:
        await connection.execute(
            "UPDATE subscriptions SET parked_reason = 'usage price in EUR on a USD subscription', "
            "parked_at = now() WHERE id = $1",
            sub.name.split("/")[1],
        )
    finally:
        await connection.close()
    await drain(migrated_url, rating_server.cache.current)
    assert await _invoices(invoice_stub, w.customer) == []  # parked: nobody claims it

    parked = await subscription_stub.ListSubscriptions(
        pb.ListSubscriptionsRequest(customer=w.customer, parked=True)
    )
    assert [(s.name, s.parked_reason) for s in parked.subscriptions] == [
        (sub.name, "usage price in EUR on a USD subscription")
    ]
    retried = await subscription_stub.RetryParkedSubscription(
        pb.RetryParkedSubscriptionRequest(name=sub.name, request_id=request_id())
    )
    assert retried.subscription.parked_reason == ""
    listed = await subscription_stub.ListSubscriptions(
        pb.ListSubscriptionsRequest(customer=w.customer, parked=True)
    )
    assert list(listed.subscriptions) == []
    await drain(migrated_url, rating_server.cache.current)
    assert [i.total for i in await _invoices(invoice_stub, w.customer)] == [2 * SEAT]
    again = await failure(
        subscription_stub.RetryParkedSubscription(
            pb.RetryParkedSubscriptionRequest(name=sub.name, request_id=request_id())
        )
    )
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION
