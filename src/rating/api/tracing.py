"""One lean server interceptor: a span per sampled call, a duration per call, ids for the logs.

Why not ``opentelemetry-instrumentation-grpc``: its aio interceptor builds a span, a wrapped
servicer context and fresh attribute dicts for every call, sampled or not, which cost 40 % of a
no-op server's rate (DESIGN.md §9). Here, per method, the attribute sets of the span and of each
status code are built once, and the wrapped handler is reused while the handler underneath is
the same; a call that is not sampled makes no span object (see ``billing.tracing``).

The status recorded is the one the client gets: a return (OK, or what ``set_code`` chose),
``context.abort`` (our error table's path, ``rating.api.errors``, ends every failure there), a
cancellation (CANCELLED) or an exception grpc turns into UNKNOWN. Any status but OK marks the
span as an error, described by the status name only: details can echo request fields.

Health checks and reflection are not traced or measured: probes would drown the real traffic.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from billing.lean_histogram import LeanHistogram
from billing.metrics import Instruments, instruments
from billing.request_context import begin_call
from billing.telemetry import lean_tracer
from billing.tracing import LeanTracer

__all__ = ["ServerTelemetry"]

_UNTRACED_PREFIXES = ("/grpc.health.", "/grpc.reflection.")
_OK = grpc.StatusCode.OK


class _Method:
    """What never changes between two calls of one method: names, attribute sets, the wrapper."""

    __slots__ = (
        "cells",
        "handler",
        "name",
        "ok_cell",
        "span_attributes",
        "traced",
        "wrapped",
    )

    def __init__(self, full_method: str, duration: LeanHistogram) -> None:
        self.traced = not full_method.startswith(_UNTRACED_PREFIXES)
        service, _, method = full_method.lstrip("/").rpartition("/")
        self.name = f"{service}/{method}"
        self.span_attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}
        self.cells = {
            code: duration.cell({"rpc.method": self.name, "rpc.grpc.status_code": code.value[0]})
            for code in grpc.StatusCode
        }
        self.ok_cell = self.cells[_OK]
        self.handler: grpc.RpcMethodHandler[Any, Any] | None = None
        self.wrapped: grpc.RpcMethodHandler[Any, Any] | None = None


class ServerTelemetry(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Traces, measures and identifies every call of our services. Install it first (outermost),
    so that calls another interceptor refuses (authentication) are measured too."""

    def __init__(self, tracer: LeanTracer | None = None, metrics: Instruments | None = None) -> None:
        self._tracer = tracer or lean_tracer("rating.api")
        self._duration = (metrics or instruments()).rpc_duration
        self._methods: dict[str, _Method] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler  # UNIMPLEMENTED, answered by grpc
        full_method: str = handler_call_details.method
        method = self._methods.get(full_method)
        if method is None:
            method = self._methods[full_method] = _Method(full_method, self._duration)
        if not method.traced:
            return handler
        if method.handler is not handler:
            method.handler, method.wrapped = handler, self._wrap(handler, method)
        assert method.wrapped is not None
        return method.wrapped

    def _wrap(
        self, handler: grpc.RpcMethodHandler[Any, Any], method: _Method
    ) -> grpc.RpcMethodHandler[Any, Any]:
        serializers = (handler.request_deserializer, handler.response_serializer)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, method, True), *serializers
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(handler.stream_unary, method, False), *serializers
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(handler.unary_stream, method, True), *serializers
            )
        assert handler.stream_stream is not None
        return grpc.stream_stream_rpc_method_handler(
            self._streaming(handler.stream_stream, method, False), *serializers
        )

    def _call(self, method: _Method, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> _Call:
        """Begin a call: its span (None unless sampled), made current, and its ids for the logs."""
        began = time.perf_counter()
        metadata: Any = context.invocation_metadata() or ()
        traceparent = None
        for key, value in metadata:
            if key == "traceparent":
                traceparent = value if isinstance(value, str) else None
                break
        span = self._tracer.start_span(method.name, traceparent, method.span_attributes)
        begin_call((metadata, request, span))
        token = otel_context.attach(trace.set_span_in_context(span)) if span is not None else None
        return _Call(method, context, began, span, token)

    def _unary(
        self, behavior: Callable[..., Any], method: _Method, unary_request: bool
    ) -> Callable[..., Any]:
        async def traced(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            with self._call(method, request if unary_request else None, context):
                return await behavior(request, context)

        return traced

    def _streaming(
        self, behavior: Callable[..., Any], method: _Method, unary_request: bool
    ) -> Callable[..., Any]:
        if not inspect.isasyncgenfunction(behavior):
            return self._unary(behavior, method, unary_request)  # writes with context.write

        async def traced(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            with self._call(method, request if unary_request else None, context):
                async for response in behavior(request, context):
                    yield response

        return traced


class _Call:
    """One call in progress; leaving it records the status the client gets."""

    __slots__ = ("began", "context", "method", "span", "token")

    def __init__(
        self,
        method: _Method,
        context: grpc.aio.ServicerContext[Any, Any],
        began: float,
        span: Span | None,
        token: object,
    ) -> None:
        self.method, self.context, self.began, self.span, self.token = method, context, began, span, token

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        if error is None or isinstance(error, grpc.aio.AbortError):
            # A return (OK, or what set_code chose), or context.abort, which sets the code.
            code = self.context.code() or (_OK if error is None else grpc.StatusCode.UNKNOWN)
        else:
            code = _code_of(error)
        method = self.method
        (method.ok_cell if code is _OK else method.cells[code]).record(time.perf_counter() - self.began)
        span = self.span
        if span is not None:
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code is not _OK:
                span.set_status(Status(StatusCode.ERROR, code.name))
            span.end()
            otel_context.detach(self.token)  # type: ignore[arg-type]


def _code_of(error: BaseException) -> grpc.StatusCode:
    """What grpc answers for an exception that escaped the handler."""
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN
