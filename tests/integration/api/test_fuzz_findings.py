"""Regressions for what tests/system/test_fuzz_rpcs.py found: each was INTERNAL before."""

from __future__ import annotations

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from billing.v1 import customer_pb2, usage_pb2
from tests.integration.api.rpc import failure, field_violations


async def test_a_summary_with_a_timestamp_no_datetime_can_hold_is_invalid(usage_stub) -> None:  # type: ignore[no-untyped-def]
    request = usage_pb2.GetUsageSummaryRequest(
        customer="customers/cus_0", meter="m", start_time=Timestamp(), end_time=Timestamp(seconds=-(2**63))
    )
    error = await failure(usage_stub.GetUsageSummary(request))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "end_time" in field_violations(error)


async def test_cancelling_a_key_with_a_nul_character_is_invalid(usage_stub) -> None:  # type: ignore[no-untyped-def]
    error = await failure(usage_stub.CancelUsage(usage_pb2.CancelUsageRequest(idempotency_key="a\x00b")))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "idempotency_key" in field_violations(error)


async def test_text_the_database_cannot_store_is_invalid_wherever_it_arrives(customer_stub) -> None:  # type: ignore[no-untyped-def]
    """The store's safety net (billing.store.connection): a filter no converter checks."""
    error = await failure(
        customer_stub.ListCustomers(customer_pb2.ListCustomersRequest(accounting_id="\x00"))
    )
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == {"": "text fields must not contain NUL characters"}


async def test_a_repeated_field_longer_than_the_limit_is_refused_before_any_validation(catalog_stub) -> None:  # type: ignore[no-untyped-def]
    from billing.v1 import catalog_pb2

    meter = catalog_pb2.Meter(event_name="e", display_name="d", dimensions=[""] * 10_001)
    error = await failure(
        catalog_stub.CreateMeter(catalog_pb2.CreateMeterRequest(meter=meter, request_id="r"))
    )
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == {"meter.dimensions": "at most 10000 entries are allowed"}


async def test_thousands_of_bad_entries_get_a_bounded_error_a_client_can_read(rating_stub) -> None:  # type: ignore[no-untyped-def]
    from billing.v1 import rating_pb2

    request = rating_pb2.QuoteRequest(currency="USD", coupon_codes=[""] * 5000, add_ons=["x"] * 5000)
    error = await failure(rating_stub.Quote(request))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(error)  # before the cap: megabytes of trailer, RESOURCE_EXHAUSTED
    assert 10 < len(violations) <= 101
    assert violations[""].startswith("and ")
    assert violations[""].endswith(" more problems")
