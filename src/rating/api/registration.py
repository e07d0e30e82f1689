"""Registering servicers so that even an undecodable request gets a proper status.

The generated ``add_*Servicer_to_server`` functions deserialize with ``FromString``; a corrupt
message then raises inside grpc and the client sees ``UNKNOWN``. Here the deserializer returns an
``Undecodable`` marker instead, and ``translate_errors`` answers it with ``INVALID_ARGUMENT``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message


@dataclass(frozen=True, slots=True)
class Undecodable:
    """Stands in for a request whose bytes are not a valid message of the method's type."""

    type_name: str


def _tolerant(message_type: type[Message]) -> Callable[[bytes], Message | Undecodable]:
    def deserialize(data: bytes) -> Message | Undecodable:
        try:
            return message_type.FromString(data)
        except DecodeError:
            return Undecodable(message_type.DESCRIPTOR.full_name)

    return deserialize


_HANDLER_KINDS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def add_service(server: grpc.aio.Server, servicer: Any, service: ServiceDescriptor) -> None:
    """Register every method of ``service`` implemented by ``servicer``."""
    handlers = {}
    for method in service.methods:
        request_type = message_factory.GetMessageClass(method.input_type)
        response_type = message_factory.GetMessageClass(method.output_type)
        kind = _HANDLER_KINDS[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = kind(
            getattr(servicer, method.name),
            request_deserializer=_tolerant(request_type),
            response_serializer=response_type.SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
