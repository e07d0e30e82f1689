"""Keeping tokens and personal data out of logs (issue 6), as structlog processors.

The first defence is structural: no request body and no call metadata is ever logged, and an
unexpected exception is logged as its type and stack only. Its message and its frames' local
variables can hold anything the request held (an email echoed by a parser, a bearer token in a
variable), so neither is written. The processors here are the second defence, for what slips
through: a field whose name says it is sensitive is replaced whatever its value, and text that
looks like an email address, a bearer token or a JWT is masked wherever it appears.
"""

from __future__ import annotations

import re
import sys
import traceback
from collections.abc import MutableMapping
from typing import Any

__all__ = ["REDACTED", "redact", "redact_text", "sanitize_exception", "traceback_without_messages"]

REDACTED = "[redacted]"

# Words that make a field sensitive, matched against the words of its name ("billing_address",
# "authorization", "api_token", "tax_ids", "customer.email").
_SENSITIVE_WORDS = frozenset(
    {
        "authorization",
        "auth",
        "bearer",
        "token",
        "tokens",
        "secret",
        "secrets",
        "password",
        "passwd",
        "credential",
        "credentials",
        "cookie",
        "email",
        "emails",
        "phone",
        "address",
        "addresses",
        "line1",
        "line2",
        "street",
        "postal",
        "taxid",
        "taxids",
    }
)
_WORDS = re.compile(r"[a-z0-9]+")
_PATTERNS = (
    (re.compile(r"(?i)\bbearer\s+\S+"), "Bearer " + REDACTED),
    (re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]*"), REDACTED),  # a JWT
    (re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)+"), "[email]"),
)
_NEVER_REDACTED = frozenset({"timestamp", "level", "logger", "trace_id", "span_id"})


def _sensitive_key(key: str) -> bool:
    words = _WORDS.findall(key.lower().replace("tax_id", "taxid"))
    return any(word in _SENSITIVE_WORDS for word in words)


def redact_text(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: REDACTED if _sensitive_key(str(k)) else _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return REDACTED  # opaque bytes are never worth the risk
    return value


def redact(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask sensitive fields and sensitive-looking text in every value."""
    for key in list(event_dict):
        if key in _NEVER_REDACTED:
            continue
        if key != "event" and _sensitive_key(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact_value(event_dict[key])
    return event_dict


def traceback_without_messages(error: BaseException) -> str:
    """The stack of ``error`` and of the exceptions it chains, with type names but neither
    messages nor local variables."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        stack = traceback.StackSummary.extract(traceback.walk_tb(current.__traceback__), capture_locals=False)
        kind = type(current)
        name = (
            kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
        )
        parts.append("Traceback (most recent call last):\n" + "".join(stack.format()) + name)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return "\n\ncaused by, or raised while handling:\n\n".join(parts)


def sanitize_exception(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: turn ``exc_info`` into ``exception``, a message-free traceback."""
    exc_info = event_dict.pop("exc_info", None)
    if exc_info:
        if exc_info is True:
            exc_info = sys.exc_info()
        error = exc_info if isinstance(exc_info, BaseException) else exc_info[1]
        if isinstance(error, BaseException):
            event_dict["exception"] = traceback_without_messages(error)
            event_dict.setdefault("error", type(error).__name__)
    return event_dict
