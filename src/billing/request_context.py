"""Who is being served right now: the ids every log line of a call or job carries.

One :class:`RequestContext` per gRPC call (or invoicer job), kept in a context variable: grpc.aio
runs each call in a context of its own, so calls never see each other's. Everything is computed
lazily, when a line is logged, so a call that logs nothing pays for one small object.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

from opentelemetry.trace import Span

from billing.tracing import parse_traceparent

__all__ = ["REQUEST_ID_HEADER", "RequestContext", "begin_call", "begin_request", "current_request"]

REQUEST_ID_HEADER = "x-request-id"
_MAX_REQUEST_ID = 128


class RequestContext:
    """The request id and trace ids of one call, for logs.

    ``request_id``: the caller's ``x-request-id`` metadata, else the request's ``request_id``
    field (mutations carry one), else a random one. ``trace_id``/``span_id``: those of the call's
    span when it is sampled; otherwise the caller's trace id (from ``traceparent``) or a random
    one, and a random span id, so the lines of one call can still be found together.
    """

    __slots__ = ("_request_id", "_span_id", "_trace_id", "metadata", "request", "span")

    def __init__(
        self,
        metadata: Sequence[tuple[str, str | bytes]] | None = None,
        request: Any = None,
        span: Span | None = None,
        request_id: str | None = None,
    ) -> None:
        self.metadata = metadata or ()
        self.request = request
        self.span = span
        self._request_id = request_id
        self._trace_id: str | None = None
        self._span_id: str | None = None

    @property
    def request_id(self) -> str:
        if self._request_id is None:
            self._request_id = (
                _usable(self._header(REQUEST_ID_HEADER))
                or _usable(getattr(self.request, "request_id", None))
                or secrets.token_hex(8)
            )
        return self._request_id

    @property
    def trace_id(self) -> str:
        if self._trace_id is None:
            if self.span is not None:
                self._trace_id = f"{self.span.get_span_context().trace_id:032x}"
            else:
                header = self._header("traceparent")
                parent = parse_traceparent(header) if isinstance(header, str) else None
                self._trace_id = f"{parent.trace_id:032x}" if parent is not None else secrets.token_hex(16)
        return self._trace_id

    @property
    def span_id(self) -> str:
        if self._span_id is None:
            if self.span is not None:
                self._span_id = f"{self.span.get_span_context().span_id:016x}"
            else:
                self._span_id = secrets.token_hex(8)
        return self._span_id

    def _header(self, name: str) -> str | bytes | None:
        for key, value in self.metadata:
            if key == name:
                return value
        return None


def _usable(value: object) -> str | None:
    """A caller-chosen id, if it is short printable text (it goes into every log line)."""
    if isinstance(value, str) and 0 < len(value) <= _MAX_REQUEST_ID and value.isprintable():
        return value
    return None


# A call stores only what it has at hand (metadata, request, span): the RequestContext is built
# when, and if, something is logged.
_Pending = tuple[Sequence[tuple[str, str | bytes]], Any, Span | None]
_CURRENT: ContextVar[RequestContext | _Pending | None] = ContextVar("billing_request", default=None)
begin_call = _CURRENT.set
"""``begin_call((metadata, request, span))``: what a gRPC call makes current, for the rest of its
task, at the cost of one tuple."""


def begin_request(context: RequestContext) -> RequestContext:
    """Make ``context`` the current one for the rest of this task (a job, a test)."""
    _CURRENT.set(context)
    return context


def current_request() -> RequestContext | None:
    current = _CURRENT.get()
    if isinstance(current, tuple):
        current = RequestContext(*current)
        _CURRENT.set(current)
    return current
