"""Hypothesis strategies for any protobuf message, built from its descriptor.

Structurally valid messages: every field may be set or left unset, oneofs get at most one member,
repeated fields and maps get a few entries, nesting stops at a depth. Strings mix arbitrary text
with ``interesting`` values (decimal strings, currency codes, resource names of the catalog under
test), so that validation is passed sometimes and the code behind it is reached too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

F = FieldDescriptor
_INTS = {
    F.TYPE_INT32: (-(2**31), 2**31 - 1),
    F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    F.TYPE_INT64: (-(2**63), 2**63 - 1),
    F.TYPE_SINT64: (-(2**63), 2**63 - 1),
    F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    F.TYPE_UINT32: (0, 2**32 - 1),
    F.TYPE_FIXED32: (0, 2**32 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1),
    F.TYPE_FIXED64: (0, 2**64 - 1),
}
EDGE_STRINGS = (
    "", "0", "1", "-1", "1.5", "0.000000000001", "0.0000000000001", "1e3", "NaN", "-0", "+1",
    "999999999999999999", "9999999999999999999999", "USD", "SEK", "JPY", "KWD", "XXX", "usd",
    "UTC", "Europe/Stockholm", "Mars/Olympus", "a@b.se", "\x00", "a\x00b", "\ud7ff\ue000", "é" * 40,
    "x" * 300, "after:", "YWZ0ZXI6eA==", "!!", "customers/", "prices/", "plans/", "meters/",
    "customers/cus_0", "prices/price_0", "plans/plan_0", "*",
)  # fmt: skip


def _ints(low: int, high: int) -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from((0, 1, -1 if low < 0 else 2, low, high)), st.integers(low, high))


def scalars(field: FieldDescriptor, strings: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == F.TYPE_STRING:
        return strings
    if kind == F.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == F.TYPE_BOOL:
        return st.booleans()
    if kind == F.TYPE_ENUM:
        known = [value.number for value in field.enum_type.values]
        return st.sampled_from([*known, 999])  # proto3 enums are open: unknown numbers arrive too
    if kind in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return st.floats(width=64 if kind == F.TYPE_DOUBLE else 32)
    low, high = _INTS[kind]
    return _ints(low, high)


def messages(
    descriptor: Descriptor, interesting: Sequence[str] = (), max_depth: int = 4
) -> st.SearchStrategy[Message]:
    strings = st.one_of(st.text(max_size=40), st.sampled_from((*EDGE_STRINGS, *interesting)))
    return _messages(descriptor, strings, 0, max_depth)


def _messages(
    descriptor: Descriptor, strings: st.SearchStrategy[str], depth: int, max_depth: int
) -> st.SearchStrategy[Message]:
    message_class = message_factory.GetMessageClass(descriptor)

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        message = message_class()
        chosen_oneofs: set[str] = set()
        for field in descriptor.fields:
            if field.containing_oneof is not None and field.containing_oneof.name in chosen_oneofs:
                continue
            if not draw(st.booleans()):
                continue
            if field.containing_oneof is not None:
                chosen_oneofs.add(field.containing_oneof.name)
            nested = field.message_type
            if nested is not None and depth >= max_depth:
                continue
            target = getattr(message, field.name)
            if nested is not None and nested.GetOptions().map_entry:
                key, value = nested.fields_by_name["key"], nested.fields_by_name["value"]
                entries = draw(st.dictionaries(scalars(key, strings), st.none(), max_size=4))
                for entry in entries:
                    if value.message_type is not None:
                        target[entry].CopyFrom(
                            draw(_messages(value.message_type, strings, depth + 1, max_depth))
                        )
                    else:
                        target[entry] = draw(scalars(value, strings))
            elif field.is_repeated:
                count = draw(st.integers(0, 4))
                for _ in range(count):
                    if nested is not None:
                        target.add().CopyFrom(draw(_messages(nested, strings, depth + 1, max_depth)))
                    else:
                        target.append(draw(scalars(field, strings)))
            elif nested is not None:
                target.CopyFrom(draw(_messages(nested, strings, depth + 1, max_depth)))
            else:
                setattr(message, field.name, draw(scalars(field, strings)))
        return message

    return build()
