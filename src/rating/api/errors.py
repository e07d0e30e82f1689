"""The one table from our error hierarchy to gRPC status codes (MLServer's pattern).

Anything not in the table is a bug: it is logged with its traceback and answered ``INTERNAL``
without internals in the message. No request ever gets ``UNKNOWN``.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
import structlog
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from billing.domain.errors import (
    Aborted,
    AlreadyExists,
    BillingError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from billing.tracing import note_exception
from rating.api.registration import MAX_REPEATED, Undecodable

log = structlog.get_logger(__name__)

STATUS_OF: dict[type[BillingError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    Aborted: grpc.StatusCode.ABORTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
}

Request = TypeVar("Request")
Response = TypeVar("Response")
Handler = Callable[[Any, Request, grpc.aio.ServicerContext[Any, Any]], Awaitable[Response]]


# The status travels in trailers, which clients refuse above 8 KiB by default (grpc's
# max_metadata_size): the message and the details are bounded well below that together.
MAX_MESSAGE_CHARS = 512
MAX_DETAILS_BYTES = 4096


def to_status(error: BillingError) -> status_pb2.Status:
    code = grpc.StatusCode.INTERNAL
    for kind in type(error).__mro__:
        if kind in STATUS_OF:  # subclasses map like their parent
            code = STATUS_OF[kind]
            break
    status = status_pb2.Status(code=code.value[0], message=error.message[:MAX_MESSAGE_CHARS])
    if isinstance(error, InvalidArgument):
        status.details.add().Pack(_bad_request(error))
    elif isinstance(error, ResourceExhausted):
        # google.rpc.RetryInfo: the standard place for "when may I come back" (AIP-193).
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromMilliseconds(error.retry_after_ms)
        status.details.add().Pack(retry)
    return status


def _bad_request(error: InvalidArgument) -> error_details_pb2.BadRequest:
    """The field violations, as many as fit in MAX_DETAILS_BYTES, then a count of the rest."""
    details = error_details_pb2.BadRequest()
    size = 0
    for index, violation in enumerate(error.violations):
        item = error_details_pb2.BadRequest.FieldViolation(
            field=violation.field[:200], description=violation.description[:300]
        )
        size += item.ByteSize() + 4
        if size > MAX_DETAILS_BYTES:
            rest = len(error.violations) - index
            details.field_violations.add(field="", description=f"and {rest} more problems")
            break
        details.field_violations.append(item)
    return details


INTERNAL = status_pb2.Status(code=code_pb2.INTERNAL, message="internal error")


def translate_errors(handler: Handler[Request, Response]) -> Handler[Request, Response]:
    """Answer every failure of ``handler`` with the status the table gives it."""

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Request, context: grpc.aio.ServicerContext[Any, Any]) -> Response:
        try:
            check_decoded(request)
            return await handler(self, request, context)
        except BillingError as error:
            status = to_status(error)
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            log.exception("unhandled error", method=handler.__name__)
            note_exception(error)
            status = INTERNAL
        # The rich status (BadRequest field violations) travels in the standard trailer.
        grpc_status = rpc_status.to_status(status)
        await context.abort(grpc_status.code, grpc_status.details, grpc_status.trailing_metadata)
        raise AssertionError("context.abort returns only by raising")  # pragma: no cover

    return wrapper


StreamHandler = Callable[[Any, Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Response]]


def translate_stream_errors(handler: StreamHandler[Response]) -> StreamHandler[Response]:
    """``translate_errors`` for a handler that streams its responses (an async generator)."""

    @functools.wraps(handler)
    async def wrapper(
        self: Any, requests: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Response]:
        try:
            async for response in handler(self, requests, context):
                yield response
            return
        except BillingError as error:
            status = to_status(error)
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            log.exception("unhandled error", method=handler.__name__)
            note_exception(error)
            status = INTERNAL
        grpc_status = rpc_status.to_status(status)
        await context.abort(grpc_status.code, grpc_status.details, grpc_status.trailing_metadata)

    return wrapper


def check_decoded(request: object) -> None:
    """Raise InvalidArgument for a message that could not be decoded or is too long."""
    decoded(request)


def decoded(request: Request | Undecodable) -> Request:
    """The request message; InvalidArgument when it could not be decoded or is too long."""
    if isinstance(request, Undecodable):
        if request.field:
            raise InvalidArgument.single(request.field, f"at most {MAX_REPEATED} entries are allowed")
        raise InvalidArgument.single("", f"the request is not a valid {request.type_name} message")
    return request
