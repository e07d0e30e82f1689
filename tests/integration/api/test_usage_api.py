"""Usage events through the real server: idempotency, per-event answers, cancel, summaries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from billing.v1 import catalog_pb2 as cpb
from billing.v1 import customer_pb2 as cust
from billing.v1 import test_clock_pb2 as tc
from billing.v1 import usage_pb2 as pb
from rating.server import RunningServer
from tests.integration.api import builders
from tests.integration.api.rpc import failure, field_violations, request_id
from tests.integration.api.test_quote_api import caught_up


def _stamp(at: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp


@pytest.fixture(scope="module")
async def world(
    catalog_stub, customer_stub, rating_server: RunningServer, migrated_url: str
) -> dict[str, str]:  # type: ignore[no-untyped-def]
    crm = f"crm-{uuid.uuid4().hex[:8]}"
    customer = (
        await customer_stub.CreateCustomer(
            cust.CreateCustomerRequest(
                customer=cust.Customer(display_name="Usage Co", currency="USD", crm_account_id=crm),
                request_id=request_id(),
            )
        )
    ).customer
    messages = await builders.meter(catalog_stub, dimensions=("channel",))
    conversations = (
        await catalog_stub.CreateMeter(
            cpb.CreateMeterRequest(
                meter=cpb.Meter(
                    event_name=builders.unique("conversation"),
                    display_name="Conversations",
                    aggregation=cpb.AGGREGATION_UNIQUE_COUNT,
                    value_property="conversation_id",
                    dimensions=("outcome",),
                ),
                request_id=request_id(),
            )
        )
    ).meter
    await caught_up(rating_server, migrated_url)
    return {
        "customer": customer.name,
        "crm": crm,
        "messages": messages.event_name,
        "messages_meter": messages.name,
        "conversations": conversations.event_name,
    }


def _event(world: dict[str, str], key: str | None = None, **fields: object) -> pb.UsageEvent:
    values: dict[str, object] = {
        "idempotency_key": key or uuid.uuid4().hex,
        "customer": world["customer"],
        "event_name": world["messages"],
        "timestamp": _stamp(datetime.now(UTC) - timedelta(minutes=1)),
        "properties": {"channel": "whatsapp"},
        "value": "3",
    }
    values.update(fields)
    return pb.UsageEvent(**values)


async def test_a_replayed_event_is_a_duplicate_and_a_changed_one_is_refused(usage_stub, world) -> None:  # type: ignore[no-untyped-def]
    event = _event(world)
    first = await usage_stub.RecordUsage(pb.RecordUsageRequest(event=event))
    again = await usage_stub.RecordUsage(pb.RecordUsageRequest(event=event))
    assert (first.duplicate, again.duplicate) == (False, True)
    changed = pb.UsageEvent()
    changed.CopyFrom(event)
    changed.value = "4"
    error = await failure(usage_stub.RecordUsage(pb.RecordUsageRequest(event=changed)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_an_event_may_name_its_customer_by_crm_id_and_is_the_same_payload(usage_stub, world) -> None:  # type: ignore[no-untyped-def]
    event = _event(world)
    await usage_stub.RecordUsage(pb.RecordUsageRequest(event=event))
    by_crm = pb.UsageEvent()
    by_crm.CopyFrom(event)
    by_crm.crm_account_id = world["crm"]
    assert (await usage_stub.RecordUsage(pb.RecordUsageRequest(event=by_crm))).duplicate


async def test_a_batch_answers_every_event_and_one_bad_event_drops_no_other(usage_stub, world) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    repeated = uuid.uuid4().hex
    at = _stamp(now - timedelta(minutes=1))
    events = [
        _event(world),  # 0 accepted
        _event(world, customer="customers/cus_nobody"),  # 1 unknown customer
        _event(world, event_name="no.such.event"),  # 2 unknown meter
        _event(world, value=""),  # 3 a sum meter needs a value
        _event(world, timestamp=_stamp(now - timedelta(days=40))),  # 4 too late
        _event(world, timestamp=_stamp(now + timedelta(minutes=10))),  # 5 too early
        _event(world, value="1e3"),  # 6 not a plain decimal
        _event(world, repeated, timestamp=at),  # 7 accepted
        _event(world, repeated, timestamp=at),  # 8 the same key and payload again: duplicate
        _event(world, repeated, timestamp=at, value="9"),  # 9 the same key, another payload
        _event(world, event_name=world["conversations"], properties={"outcome": "resolved"}, value=""),  # 10
    ]
    response = await usage_stub.RecordUsageBatch(pb.RecordUsageBatchRequest(events=events))
    outcomes = [
        (r.outcome, grpc.StatusCode.OK if not r.code else _code(r.code), r.field) for r in response.results
    ]
    accepted, duplicate, rejected = (
        pb.USAGE_OUTCOME_ACCEPTED,
        pb.USAGE_OUTCOME_DUPLICATE,
        pb.USAGE_OUTCOME_REJECTED,
    )
    assert outcomes == [
        (accepted, grpc.StatusCode.OK, ""),
        (rejected, grpc.StatusCode.NOT_FOUND, "customer"),
        (rejected, grpc.StatusCode.NOT_FOUND, "event_name"),
        (rejected, grpc.StatusCode.INVALID_ARGUMENT, "value"),
        (rejected, grpc.StatusCode.FAILED_PRECONDITION, "timestamp"),
        (rejected, grpc.StatusCode.FAILED_PRECONDITION, "timestamp"),
        (rejected, grpc.StatusCode.INVALID_ARGUMENT, "value"),
        (accepted, grpc.StatusCode.OK, ""),
        (duplicate, grpc.StatusCode.OK, ""),
        (rejected, grpc.StatusCode.FAILED_PRECONDITION, "idempotency_key"),
        (rejected, grpc.StatusCode.INVALID_ARGUMENT, "properties"),
    ]
    assert (response.accepted_count, response.duplicate_count, response.rejected_count) == (2, 1, 8)


def _code(value: int) -> grpc.StatusCode:
    return next(code for code in grpc.StatusCode if code.value[0] == value)


async def test_an_empty_or_oversized_batch_is_invalid(usage_stub, world) -> None:  # type: ignore[no-untyped-def]
    error = await failure(usage_stub.RecordUsageBatch(pb.RecordUsageBatchRequest()))
    assert set(field_violations(error)) == {"events"}


async def test_a_single_event_outside_the_window_is_a_failed_precondition(usage_stub, world) -> None:  # type: ignore[no-untyped-def]
    old = _event(world, timestamp=_stamp(datetime.now(UTC) - timedelta(days=36)))
    error = await failure(usage_stub.RecordUsage(pb.RecordUsageRequest(event=old)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "35 days" in (error.details() or "")


async def test_a_stream_answers_each_batch_in_order_after_commit(usage_stub, world) -> None:  # type: ignore[no-untyped-def]
    batches = [pb.StreamUsageRequest(events=[_event(world) for _ in range(n)]) for n in (3, 1, 5)]

    async def send():  # type: ignore[no-untyped-def]
        for batch in batches:
            yield batch

    answers = [answer async for answer in usage_stub.StreamUsage(send())]
    assert [(a.batch, a.accepted_count, len(a.results)) for a in answers] == [(0, 3, 3), (1, 1, 1), (2, 5, 5)]


async def test_summaries_aggregate_filter_group_and_forget_cancelled_events(
    usage_stub, customer_stub, world
) -> None:  # type: ignore[no-untyped-def]
    customer = (
        await customer_stub.CreateCustomer(
            cust.CreateCustomerRequest(
                customer=cust.Customer(display_name="Sum Co", currency="USD"), request_id=request_id()
            )
        )
    ).customer
    at = datetime.now(UTC) - timedelta(minutes=2)
    events = [
        _event(
            world,
            customer=customer.name,
            properties={"channel": "whatsapp"},
            value="2.5",
            timestamp=_stamp(at),
        ),
        _event(
            world,
            customer=customer.name,
            properties={"channel": "whatsapp"},
            value="1.25",
            timestamp=_stamp(at),
        ),
        _event(
            world, customer=customer.name, properties={"channel": "email"}, value="10", timestamp=_stamp(at)
        ),
    ]
    await usage_stub.RecordUsageBatch(pb.RecordUsageBatchRequest(events=events))
    window = {"start_time": _stamp(at - timedelta(hours=1)), "end_time": _stamp(at + timedelta(hours=1))}

    async def summary(**fields: object) -> list[tuple[str, str, int]]:
        request = pb.GetUsageSummaryRequest(
            customer=customer.name, meter=world["messages"], **window, **fields
        )
        return [(g.key, g.value, g.event_count) for g in (await usage_stub.GetUsageSummary(request)).groups]

    assert await summary() == [("", "13.75", 3)]  # 2.5 + 1.25 + 10
    assert await summary(group_by="channel") == [("email", "10", 1), ("whatsapp", "3.75", 2)]
    assert await summary(filters=[cpb.PropertyFilter(key="channel", value="whatsapp")]) == [("", "3.75", 2)]

    cancelled = await usage_stub.CancelUsage(pb.CancelUsageRequest(idempotency_key=events[2].idempotency_key))
    again = await usage_stub.CancelUsage(pb.CancelUsageRequest(idempotency_key=events[2].idempotency_key))
    assert (cancelled.cancelled, again.cancelled) == (True, False)
    assert await summary() == [("", "3.75", 2)]
    missing = await failure(usage_stub.CancelUsage(pb.CancelUsageRequest(idempotency_key="never-sent")))
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    bad = await failure(usage_stub.GetUsageSummary(pb.GetUsageSummaryRequest(
        customer=customer.name, meter=world["messages"], group_by="colour", **window)))  # fmt: skip
    assert set(field_violations(bad)) == {"group_by"}


async def _clock_customer(clock_stub, customer_stub, clock_time: datetime) -> tuple[cust.Customer, str]:  # type: ignore[no-untyped-def]
    """A customer, with a CRM account id, on a new test clock frozen at ``clock_time``."""
    clock = (
        await clock_stub.CreateTestClock(
            tc.CreateTestClockRequest(
                test_clock=tc.TestClock(frozen_time=_stamp(clock_time)), request_id=request_id()
            )
        )
    ).test_clock
    crm = f"crm-{uuid.uuid4().hex[:8]}"
    simulated = (
        await customer_stub.CreateCustomer(
            cust.CreateCustomerRequest(
                customer=cust.Customer(
                    display_name="Sim Co", currency="USD", test_clock=clock.name, crm_account_id=crm
                ),
                request_id=request_id(),
            )
        )
    ).customer
    return simulated, crm


async def test_a_test_clock_customer_reports_usage_in_the_clock_time(
    usage_stub, customer_stub, clock_stub, world
) -> None:  # type: ignore[no-untyped-def]
    """Its late window is the clock's: 35 days back and 5 minutes ahead of the clock's time,
    years from the server's; a real customer's event at that time is still refused."""
    clock_time = datetime(2031, 3, 10, 12, tzinfo=UTC)
    simulated, crm = await _clock_customer(clock_stub, customer_stub, clock_time)
    events = [
        _event(world, customer=simulated.name, timestamp=_stamp(clock_time - timedelta(days=2)), value="2"),
        _event(world, customer="", crm_account_id=crm, timestamp=_stamp(clock_time), value="5"),
        _event(world, customer=simulated.name, timestamp=_stamp(clock_time - timedelta(days=36))),  # late
        _event(world, customer=simulated.name, timestamp=_stamp(clock_time + timedelta(minutes=6))),  # early
        _event(world, timestamp=_stamp(clock_time)),  # the real customer: far in its future
    ]
    response = await usage_stub.RecordUsageBatch(pb.RecordUsageBatchRequest(events=events))
    assert [(r.outcome, r.field) for r in response.results] == [
        (pb.USAGE_OUTCOME_ACCEPTED, ""),
        (pb.USAGE_OUTCOME_ACCEPTED, ""),
        (pb.USAGE_OUTCOME_REJECTED, "timestamp"),
        (pb.USAGE_OUTCOME_REJECTED, "timestamp"),
        (pb.USAGE_OUTCOME_REJECTED, "timestamp"),
    ]
    assert "35 days in the past" in response.results[2].reason
    assert "5 minutes in the future" in response.results[3].reason
    single = _event(
        world, customer=simulated.name, timestamp=_stamp(clock_time - timedelta(hours=1)), value="4"
    )
    assert not (await usage_stub.RecordUsage(pb.RecordUsageRequest(event=single))).duplicate
    summary = await usage_stub.GetUsageSummary(
        pb.GetUsageSummaryRequest(
            customer=simulated.name,
            meter=world["messages"],
            start_time=_stamp(clock_time - timedelta(days=30)),
            end_time=_stamp(clock_time + timedelta(minutes=1)),
        )
    )
    assert [(g.value, g.event_count) for g in summary.groups] == [("11", 3)]  # 2 + 5 + 4


async def test_a_test_clock_customer_s_event_in_real_time_is_refused(
    usage_stub, customer_stub, clock_stub, world
) -> None:  # type: ignore[no-untyped-def]
    """An event at the server's "now" is inside the server's window but years from the clock's
    time: counted, it would land in a period the clock's customer never reaches."""
    clock_time = datetime(2031, 3, 10, 12, tzinfo=UTC)
    simulated, crm = await _clock_customer(clock_stub, customer_stub, clock_time)
    real_time = [
        _event(world, customer=simulated.name),
        _event(world, customer="", crm_account_id=crm),
        _event(world, customer=simulated.name, timestamp=_stamp(clock_time)),
        _event(world),  # a real customer at the server's time
    ]
    response = await usage_stub.RecordUsageBatch(pb.RecordUsageBatchRequest(events=real_time))
    assert [(r.outcome, r.field) for r in response.results] == [
        (pb.USAGE_OUTCOME_REJECTED, "timestamp"),
        (pb.USAGE_OUTCOME_REJECTED, "timestamp"),
        (pb.USAGE_OUTCOME_ACCEPTED, ""),
        (pb.USAGE_OUTCOME_ACCEPTED, ""),
    ]
    assert "test clock" in response.results[0].reason
    assert response.results[0].code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    single = await failure(
        usage_stub.RecordUsage(pb.RecordUsageRequest(event=_event(world, customer=simulated.name)))
    )
    assert single.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "test clock" in (single.details() or "")
    summary = await usage_stub.GetUsageSummary(
        pb.GetUsageSummaryRequest(
            customer=simulated.name,
            meter=world["messages"],
            start_time=_stamp(datetime.now(UTC) - timedelta(days=1)),
            end_time=_stamp(datetime.now(UTC) + timedelta(days=1)),
        )
    )
    assert [(g.value, g.event_count) for g in summary.groups] == [("0", 0)]  # none in the server's time
