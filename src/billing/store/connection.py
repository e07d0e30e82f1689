"""The pool's connection class: a span per statement when sampled, and text PostgreSQL refuses
reported as bad input.

Tracing: a span per query, as a child of the current span, only when that span is sampled.

``opentelemetry-instrumentation-asyncpg`` (0.66b1) was measured first, on one connection running
``SELECT $1::int``: 41–47 µs of client CPU per query against 10.6–11.8 µs bare, sampled or not,
because it builds a span for every query. This connection class costs nothing measurable when
the current span is not sampled (10.6–11.9 µs) and 32–35 µs when it is. (That package also pins
an older SDK than ours.)

The span carries the statement text, which is always our own parameterised SQL, and never the
arguments, which are customer data. A failed query records the SQLSTATE, not the message (a
message can quote a value).

PostgreSQL text cannot hold NUL (SQLSTATE 22021): a request string carrying one is the caller's
mistake, so it becomes ``InvalidArgument`` here, for every statement, instead of an INTERNAL
error wherever a converter did not check that field (found by tests/system/test_fuzz_rpcs.py).
"""

from __future__ import annotations

from typing import Any

import asyncpg
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from billing.domain.errors import InvalidArgument

__all__ = ["StoreConnection"]

_tracer = trace.get_tracer("billing.store")
_MAX_STATEMENT = 4096


def _refused_text() -> InvalidArgument:
    return InvalidArgument.single("", "text fields must not contain NUL characters")


def _traced(name: str) -> Any:
    plain = getattr(asyncpg.Connection, name)

    async def untraced(self: asyncpg.Connection[Any], query: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return await plain(self, query, *args, **kwargs)
        except asyncpg.CharacterNotInRepertoireError:
            raise _refused_text() from None

    async def method(self: asyncpg.Connection[Any], query: str, *args: Any, **kwargs: Any) -> Any:
        if not trace.get_current_span().is_recording():
            return await untraced(self, query, *args, **kwargs)
        operation = query.lstrip().split(None, 1)[0].rstrip(";").upper() if query.strip() else "QUERY"
        attributes = {
            "db.system.name": "postgresql",
            "db.operation.name": operation,
            "db.query.text": query[:_MAX_STATEMENT],
        }
        with _tracer.start_as_current_span(
            operation,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                return await untraced(self, query, *args, **kwargs)
            except BaseException as error:
                sqlstate = getattr(error, "sqlstate", None)
                if sqlstate:
                    span.set_attribute("db.response.status_code", sqlstate)
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                raise

    method.__name__ = name
    return method


class StoreConnection(asyncpg.Connection):
    """Every statement a pool connection runs, including BEGIN and COMMIT of transactions."""

    execute = _traced("execute")
    executemany = _traced("executemany")
    fetch = _traced("fetch")
    fetchrow = _traced("fetchrow")
    fetchval = _traced("fetchval")
    fetchmany = _traced("fetchmany")
