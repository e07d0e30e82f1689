"""Helpers for asserting on gRPC errors in tests."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2


def request_id() -> str:
    """A request id no other call uses."""
    return f"test-{uuid.uuid4().hex}"


async def failure(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    """Await ``call`` and return the error it must fail with."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def field_violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """The google.rpc.BadRequest field violations carried by ``error``, by field."""
    details = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    assert details is not None, f"{error.code()} {error.details()} carries no rich status"
    status = status_pb2.Status.FromString(details)
    assert status.code == error.code().value[0]
    violations: dict[str, str] = {}
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            violations.update({v.field: v.description for v in bad_request.field_violations})
    return violations
