"""Who may call what, and how much: one grpc.aio server interceptor in front of every RPC.

Per call, on the hot path: find the ``authorization`` metadata, SHA-256 the bearer secret, one
dictionary lookup in the in-memory token snapshot, one set lookup for the scope (``scopes.py``),
one GCRA step. No database round trip: the snapshot is replaced whole by a watcher within a
poll interval of a token being issued or revoked.

Refusals use the one status table (``errors.to_status``): no or unknown or revoked token ->
UNAUTHENTICATED; a token without the method's scope -> PERMISSION_DENIED; over a limit ->
RESOURCE_EXHAUSTED with google.rpc.RetryInfo.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from grpc_status import rpc_status

from billing.domain.api_tokens import ApiToken, Scope, TokenSnapshot, digest
from billing.domain.errors import BillingError, PermissionDenied, Unauthenticated
from rating.api.errors import to_status
from rating.api.limits import Allowance, LimitDefaults, RateLimiter, StreamSlots, allowance_for
from rating.api.scopes import OPEN_SERVICES, SCOPE_OF

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
# grpc's stubs say a handler, but an unknown method gives None (grpc answers it UNIMPLEMENTED).
Continuation: TypeAlias = "Callable[[grpc.HandlerCallDetails], Awaitable[Handler]]"
if TYPE_CHECKING:  # generic only in the stubs
    _Interceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    _Interceptor = grpc.aio.ServerInterceptor


class TokenTable:
    """The token snapshot calls are checked against; swapped whole, like the catalog."""

    def __init__(self, initial: TokenSnapshot) -> None:
        self.snapshot = initial

    def version(self) -> int:
        return self.snapshot.version

    def publish(self, snapshot: TokenSnapshot) -> None:
        if snapshot.version > self.snapshot.version:
            self.snapshot = snapshot


class AccessControl(_Interceptor):
    def __init__(
        self, tokens: TokenTable, defaults: LimitDefaults, clock_ns: Callable[[], int] = time.monotonic_ns
    ) -> None:
        self._tokens = tokens
        self._defaults = defaults
        self._clock_ns = clock_ns
        self._allowances: dict[str, Allowance] = {}  # by token id; limits never change per id

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> Handler:
        method: str = details.method
        scope = SCOPE_OF.get(method)
        if scope is None:
            if method.rpartition("/")[0][1:] in OPEN_SERVICES:
                return await continuation(details)
            # No billing service serves it (``check_covered``): fail closed, to admins only.
            scope = Scope.BILLING_ADMIN
        try:
            token = self._authenticate(details.invocation_metadata)
            if scope not in token.granted:
                raise PermissionDenied(f"token {token.name!r} lacks the scope {scope.value!r} for {method}")
            allowance = self._allowances.get(token.id) or self._allowance(token)
            delay_ns = allowance.rate.admit(self._clock_ns())
        except BillingError as error:
            return _refusal(await continuation(details), error)
        handler: Handler | None = await continuation(details)
        if handler is None:
            return handler  # type: ignore[return-value]  # UNIMPLEMENTED, answered by grpc
        if delay_ns:
            handler = _delayed(handler, delay_ns, allowance.rate)
        if handler.request_streaming or handler.response_streaming:
            return _counted(handler, allowance.streams)
        return handler

    def _authenticate(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> ApiToken:
        value = next((v for k, v in metadata or () if k == "authorization"), None)
        if value is None:
            raise Unauthenticated("missing credentials: send the metadata 'authorization: Bearer <token>'")
        scheme, _, secret = str(value).partition(" ")
        if scheme.lower() != "bearer" or not secret:
            raise Unauthenticated("the authorization metadata must be 'Bearer <token>'")
        token = self._tokens.snapshot.by_digest.get(digest(secret.strip()))
        if token is None:
            raise Unauthenticated("unknown token")
        if token.revoked_at is not None:
            raise Unauthenticated(f"token {token.name!r} was revoked")
        return token

    def _allowance(self, token: ApiToken) -> Allowance:
        allowance = self._allowances[token.id] = allowance_for(token, self._defaults)
        return allowance


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: BillingError) -> None:
    status = rpc_status.to_status(to_status(error))
    await context.abort(status.code, status.details, status.trailing_metadata)


def _refusal(handler: Handler | None, error: BillingError) -> Handler:
    """A handler of the method's own kind that reads nothing and answers ``error``."""

    async def refuse(_request: object, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await _abort(context, error)

    streaming = (handler.request_streaming, handler.response_streaming) if handler else (False, False)
    make = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[streaming]
    return make(refuse)  # no deserializer: the request bytes are never decoded


def _delayed(handler: Handler, delay_ns: int, rate: RateLimiter) -> Handler:
    """The same handler, run when the call's turn comes; refused at once, with its place given
    back, when its deadline would pass first (a RetryInfo says more than DEADLINE_EXCEEDED).
    Only calls over their token's rate pay for this wrapper."""
    field = _FIELDS[(handler.request_streaming, handler.response_streaming)]
    behavior = getattr(handler, field)
    delay_s = delay_ns / 1e9

    async def wait_turn(context: grpc.aio.ServicerContext[Any, Any]) -> None:
        rate.waiting += 1
        try:
            remaining = context.time_remaining()
            if remaining is not None and remaining < delay_s:
                rate.refund()
                await _abort(context, rate.exceeded(delay_ns))
            await asyncio.sleep(delay_s)
        finally:
            rate.waiting -= 1

    if inspect.isasyncgenfunction(behavior):

        async def generate(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            await wait_turn(context)
            async for response in behavior(request, context):
                yield response

        return handler._replace(**{field: generate})  # type: ignore[attr-defined,no-any-return]

    async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await wait_turn(context)
        return await behavior(request, context)

    return handler._replace(**{field: run})  # type: ignore[attr-defined,no-any-return]


_FIELDS = {
    (False, False): "unary_unary",
    (False, True): "unary_stream",
    (True, False): "stream_unary",
    (True, True): "stream_stream",
}


def _counted(handler: Handler, slots: StreamSlots) -> Handler:
    """The same handler, holding one of the token's stream slots while it runs."""
    field = _FIELDS[(handler.request_streaming, handler.response_streaming)]
    behavior = getattr(handler, field)

    if inspect.isasyncgenfunction(behavior):

        async def generate(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            try:
                slots.take()
            except BillingError as error:
                await _abort(context, error)
            try:
                async for response in behavior(request, context):
                    yield response
            finally:
                slots.give_back()

        return handler._replace(**{field: generate})  # type: ignore[attr-defined,no-any-return]

    async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            slots.take()
        except BillingError as error:
            await _abort(context, error)
        try:
            return await behavior(request, context)
        finally:
            slots.give_back()

    return handler._replace(**{field: run})  # type: ignore[attr-defined,no-any-return]
