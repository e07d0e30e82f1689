"""Test clocks through the real server: they only move forward, and customers join them at birth."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from google.protobuf import field_mask_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from billing.v1 import customer_pb2, customer_pb2_grpc, test_clock_pb2_grpc
from billing.v1 import test_clock_pb2 as pb
from tests.integration.api.rpc import failure, field_violations, request_id

Stub = test_clock_pb2_grpc.TestClockServiceStub
JAN_1 = datetime(2030, 1, 1, tzinfo=UTC)


def _stamp(instant: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(instant)
    return stamp


async def _clock(stub: Stub, at: datetime = JAN_1) -> pb.TestClock:
    response = await stub.CreateTestClock(
        pb.CreateTestClockRequest(
            test_clock=pb.TestClock(display_name="trial run", frozen_time=_stamp(at)), request_id=request_id()
        )
    )
    return response.test_clock


async def test_a_clock_starts_ready_at_its_time_truncated_to_the_second(clock_stub: Stub) -> None:
    clock = await _clock(clock_stub, datetime(2030, 1, 1, 0, 0, 0, 750_000, tzinfo=UTC))
    assert clock.name.startswith("testClocks/clock_")
    assert clock.frozen_time.ToDatetime(tzinfo=UTC) == JAN_1
    assert clock.status == pb.TEST_CLOCK_STATUS_READY
    fetched = (await clock_stub.GetTestClock(pb.GetTestClockRequest(name=clock.name))).test_clock
    assert fetched == clock


async def test_a_clock_moves_forward_and_never_back(clock_stub: Stub) -> None:
    clock = await _clock(clock_stub)
    later = datetime(2030, 3, 1, tzinfo=UTC)
    advanced = (
        await clock_stub.AdvanceTestClock(
            pb.AdvanceTestClockRequest(name=clock.name, frozen_time=_stamp(later), request_id=request_id())
        )
    ).test_clock
    assert advanced.frozen_time.ToDatetime(tzinfo=UTC) == later
    for target in (later, JAN_1):
        error = await failure(
            clock_stub.AdvanceTestClock(
                pb.AdvanceTestClockRequest(
                    name=clock.name, frozen_time=_stamp(target), request_id=request_id()
                )
            )
        )
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, target


async def test_a_retried_advance_answers_again_without_moving_twice(clock_stub: Stub) -> None:
    clock = await _clock(clock_stub)
    request = pb.AdvanceTestClockRequest(
        name=clock.name, frozen_time=_stamp(datetime(2030, 2, 1, tzinfo=UTC)), request_id=request_id()
    )
    first = await clock_stub.AdvanceTestClock(request)
    # Not FAILED_PRECONDITION ("must move forward"): the stored answer comes back.
    assert await clock_stub.AdvanceTestClock(request) == first


async def test_bad_clock_requests_name_their_fields(clock_stub: Stub) -> None:
    error = await failure(
        clock_stub.CreateTestClock(
            pb.CreateTestClockRequest(test_clock=pb.TestClock(), request_id=request_id())
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"test_clock.frozen_time"}
    error = await failure(
        clock_stub.AdvanceTestClock(pb.AdvanceTestClockRequest(name="clocks/x", request_id=request_id()))
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"name"}
    error = await failure(clock_stub.GetTestClock(pb.GetTestClockRequest(name="testClocks/clock_missing")))
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_a_deleted_clock_is_gone_but_its_customers_stay(
    clock_stub: Stub, customer_stub: customer_pb2_grpc.CustomerServiceStub
) -> None:
    clock = await _clock(clock_stub)
    customer = (
        await customer_stub.CreateCustomer(
            customer_pb2.CreateCustomerRequest(
                customer=customer_pb2.Customer(display_name="Sim AB", currency="SEK", test_clock=clock.name),
                request_id=request_id(),
            )
        )
    ).customer
    assert customer.test_clock == clock.name
    await clock_stub.DeleteTestClock(pb.DeleteTestClockRequest(name=clock.name, request_id=request_id()))
    error = await failure(clock_stub.GetTestClock(pb.GetTestClockRequest(name=clock.name)))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    listed = await clock_stub.ListTestClocks(pb.ListTestClocksRequest(page_size=1000))
    assert clock.name not in {c.name for c in listed.test_clocks}
    kept = await customer_stub.GetCustomer(customer_pb2.GetCustomerRequest(name=customer.name))
    assert kept.customer.test_clock == clock.name
    error = await failure(
        customer_stub.CreateCustomer(
            customer_pb2.CreateCustomerRequest(
                customer=customer_pb2.Customer(display_name="Late AB", currency="SEK", test_clock=clock.name),
                request_id=request_id(),
            )
        )
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_a_customers_clock_cannot_change_but_its_payment_method_flag_can(
    clock_stub: Stub, customer_stub: customer_pb2_grpc.CustomerServiceStub
) -> None:
    clock = await _clock(clock_stub)
    customer = (
        await customer_stub.CreateCustomer(
            customer_pb2.CreateCustomerRequest(
                customer=customer_pb2.Customer(display_name="Sim AB", currency="SEK"), request_id=request_id()
            )
        )
    ).customer
    assert (customer.test_clock, customer.has_payment_method) == ("", False)
    error = await failure(
        customer_stub.UpdateCustomer(
            customer_pb2.UpdateCustomerRequest(
                customer=customer_pb2.Customer(name=customer.name, test_clock=clock.name),
                update_mask=field_mask_pb2.FieldMask(paths=["test_clock"]),
                request_id=request_id(),
            )
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    updated = await customer_stub.UpdateCustomer(
        customer_pb2.UpdateCustomerRequest(
            customer=customer_pb2.Customer(name=customer.name, has_payment_method=True),
            update_mask=field_mask_pb2.FieldMask(paths=["has_payment_method"]),
            request_id=request_id(),
        )
    )
    assert updated.customer.has_payment_method
