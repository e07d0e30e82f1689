"""Registering servicers so that even an undecodable request gets a proper status.

The generated ``add_*Servicer_to_server`` functions deserialize with ``FromString``; a corrupt
message then raises inside grpc and the client sees ``UNKNOWN``. Here the deserializer returns an
``Undecodable`` marker instead, and ``translate_errors`` answers it with ``INVALID_ARGUMENT``.

A handler marked ``@raw_request`` gets the request's bytes and decodes them itself with
``decode``, only when it needs the message: the quote cache answers from the bytes alone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message

# No repeated field of any request may hold more entries than this (the largest legitimate one
# is a usage batch, 10,000 events). Hundreds of thousands of empty entries fit in 4 MiB and each
# costs validation work: found by fuzzing, such requests took the server over 15 s each.
MAX_REPEATED = 10_000
# An entry takes at least two bytes on the wire, so a smaller request cannot exceed the limit
# and is not inspected: the check costs nothing on the quote path.
_INSPECT_ABOVE_BYTES = 2 * MAX_REPEATED


@dataclass(frozen=True, slots=True)
class Undecodable:
    """Stands in for a request whose bytes are not a valid message of the method's type, or
    that has a repeated field longer than MAX_REPEATED (``field`` names it)."""

    type_name: str
    field: str = ""


M = TypeVar("M", bound=Message)
F = TypeVar("F", bound=Callable[..., Any])


def decode(message_type: type[M], data: bytes) -> M | Undecodable:
    try:
        message = message_type.FromString(data)
    except DecodeError:
        return Undecodable(message_type.DESCRIPTOR.full_name)
    if len(data) > _INSPECT_ABOVE_BYTES:
        field = _overlong(message, "")
        if field:
            return Undecodable(message_type.DESCRIPTOR.full_name, field)
    return message


def _tolerant(message_type: type[Message]) -> Callable[[bytes], Message | Undecodable]:
    def deserialize(data: bytes) -> Message | Undecodable:
        return decode(message_type, data)

    return deserialize


def _overlong(message: Message, path: str) -> str:
    """The path of the first repeated field longer than MAX_REPEATED, or ""."""
    for name, repeated, nested in _plan(message.DESCRIPTOR):
        label = f"{path}.{name}" if path else name
        if not repeated:
            if message.HasField(name):
                found = _overlong(getattr(message, name), label)
                if found:
                    return found
            continue
        value = getattr(message, name)
        if len(value) > MAX_REPEATED:
            return label
        if nested:
            for index, item in enumerate(value):
                found = _overlong(item, f"{label}[{index}]")
                if found:
                    return found
    return ""


@functools.cache
def _plan(descriptor: Descriptor) -> tuple[tuple[str, bool, bool], ...]:
    """The fields of ``descriptor`` that can hold a repeated field: (name, repeated, descend).

    A repeated field is counted; a message field is descended into only if its type can hold
    a repeated field itself. Walking every field of every message with ListFields cost a third
    of the server's CPU on a 1,000-event usage batch; this plan touches only what may matter
    (an event's properties map, not its scalars). Map entries are not descended into.
    """
    plan = []
    for field in descriptor.fields:
        nested = field.message_type
        map_field = nested is not None and nested.GetOptions().map_entry
        descend = nested is not None and not map_field and _holds_repeated(nested, frozenset())
        if field.is_repeated or descend:
            plan.append((field.name, field.is_repeated, descend))
    return tuple(plan)


def _holds_repeated(descriptor: Descriptor, seen: frozenset[str]) -> bool:
    if descriptor.full_name in seen:  # a recursive type: some instance may nest a repeated field
        return True
    seen = seen | {descriptor.full_name}
    return any(
        field.is_repeated or (field.message_type is not None and _holds_repeated(field.message_type, seen))
        for field in descriptor.fields
    )


def raw_request(handler: F) -> F:
    """Mark a handler that takes the request as bytes (and ``decode``s it when it must)."""
    handler.raw_request = True  # type: ignore[attr-defined]
    return handler


_HANDLER_KINDS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def _serializer(message_type: type[Message]) -> Callable[[Message | bytes], bytes]:
    """Serialize a response message; bytes (an answer cached already encoded) pass as they are."""
    encode = message_type.SerializeToString

    def serialize(response: Message | bytes) -> bytes:
        return response if isinstance(response, bytes) else encode(response)

    return serialize


def add_service(server: grpc.aio.Server, servicer: Any, service: ServiceDescriptor) -> None:
    """Register every method of ``service``; ``servicer`` must implement them all (a missing
    one fails here, at start, rather than as UNIMPLEMENTED in production)."""
    handlers = {}
    for method in service.methods:
        request_type = message_factory.GetMessageClass(method.input_type)
        response_type = message_factory.GetMessageClass(method.output_type)
        kind = _HANDLER_KINDS[(method.client_streaming, method.server_streaming)]
        handler = getattr(servicer, method.name)
        raw = getattr(handler, "raw_request", False)
        handlers[method.name] = kind(
            handler,
            request_deserializer=None if raw else _tolerant(request_type),
            response_serializer=_serializer(response_type),
        )
    # NOTE: not also ``add_registered_method_handlers``, as the generated code does: with the
    # ~60 methods of our services registered, a cached quote cost the grpc.aio server twice the
    # instructions (callgrind: 709k vs 340k per call).
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
