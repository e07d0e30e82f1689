"""The deserializer's bound on repeated fields: found wherever it nests, and cheap when absent."""

from __future__ import annotations

from google.protobuf import struct_pb2

from billing.v1 import catalog_pb2, usage_pb2
from rating.api.registration import MAX_REPEATED, Undecodable, decode


def _event(key: str, properties: int = 1) -> usage_pb2.UsageEvent:
    return usage_pb2.UsageEvent(
        idempotency_key=key,
        customer="customers/c1",
        event_name="conversation.message",
        properties={f"p{n}": "x" for n in range(properties)},
    )


def test_a_full_batch_decodes_to_its_message() -> None:
    request = usage_pb2.RecordUsageBatchRequest(events=[_event(f"k{n}") for n in range(MAX_REPEATED)])
    decoded = decode(usage_pb2.RecordUsageBatchRequest, request.SerializeToString())
    assert decoded == request


def test_one_event_too_many_is_named() -> None:
    request = usage_pb2.RecordUsageBatchRequest(events=[_event(f"k{n}") for n in range(MAX_REPEATED + 1)])
    decoded = decode(usage_pb2.RecordUsageBatchRequest, request.SerializeToString())
    assert decoded == Undecodable("billing.v1.RecordUsageBatchRequest", "events")


def test_an_overlong_map_inside_one_event_of_a_batch_is_found() -> None:
    events = [_event("a"), _event("b", properties=MAX_REPEATED + 1), _event("c")]
    request = usage_pb2.StreamUsageRequest(events=events)
    decoded = decode(usage_pb2.StreamUsageRequest, request.SerializeToString())
    assert decoded == Undecodable("billing.v1.StreamUsageRequest", "events[1].properties")


def test_an_overlong_field_of_a_singular_nested_message_is_found() -> None:
    meter = catalog_pb2.Meter(event_name="e", display_name="d", dimensions=[""] * (MAX_REPEATED + 1))
    request = catalog_pb2.CreateMeterRequest(request_id="r", meter=meter)
    decoded = decode(catalog_pb2.CreateMeterRequest, request.SerializeToString())
    assert decoded == Undecodable("billing.v1.CreateMeterRequest", "meter.dimensions")


def test_an_overlong_field_deep_in_a_recursive_type_is_found() -> None:
    # Value -> ListValue -> Value...: the plan of a recursive type must still reach every level.
    inner = struct_pb2.ListValue(values=[struct_pb2.Value(number_value=1)] * (MAX_REPEATED + 1))
    nested = struct_pb2.Value(list_value=inner)
    outer = struct_pb2.ListValue(values=[struct_pb2.Value(bool_value=True), nested])
    assert decode(struct_pb2.ListValue, outer.SerializeToString()) == Undecodable(
        "google.protobuf.ListValue", "values[1].list_value.values"
    )
    inner.values.pop()
    within = struct_pb2.ListValue(values=[struct_pb2.Value(list_value=inner)])
    assert decode(struct_pb2.ListValue, within.SerializeToString()) == within
