"""The redaction processors: sensitive fields, sensitive-looking text, message-free tracebacks."""

from __future__ import annotations

from typing import Any

from billing.redaction import REDACTED, redact, sanitize_exception, traceback_without_messages


def _redacted(**fields: Any) -> dict[str, Any]:
    return dict(redact(None, "info", dict(fields)))


def test_fields_named_as_sensitive_are_replaced_whatever_their_value() -> None:
    out = _redacted(
        authorization="Bearer abc",
        api_token="t0k",
        customer_email="a@b.se",
        billing_address={"line1": "1 Main St"},
        tax_ids=["SE123"],
        phone="+4670",
        count=3,
    )
    assert out["authorization"] == out["api_token"] == out["customer_email"] == REDACTED
    assert out["billing_address"] == out["tax_ids"] == out["phone"] == REDACTED
    assert out["count"] == 3


def test_text_that_looks_sensitive_is_masked_wherever_it_appears() -> None:
    out = _redacted(
        event="call from jane.doe@example.com with bearer sk_live_canary",
        detail={"nested": ["Authorization: Bearer abc.def", "eyJhbGciOi.eyJzdWIiOi.sig"]},
    )
    assert "jane.doe@example.com" not in str(out)
    assert "[email]" in out["event"]
    assert "sk_live_canary" not in str(out)
    assert "abc.def" not in str(out)
    assert "eyJhbGciOi" not in str(out)


def test_ids_and_ordinary_fields_are_kept() -> None:
    out = _redacted(trace_id="0af7651916cd43dd8448eb211c80319c", method="Quote", listen="127.0.0.1:1")
    assert out == {"trace_id": "0af7651916cd43dd8448eb211c80319c", "method": "Quote", "listen": "127.0.0.1:1"}


# Request data reaches an exception as values, never as source text: pass it in.
CANARIES = {
    "token": "sk_live_local_variable_canary",
    "email": "cause-canary@example.com",
    "street": "Canary St",
}


def _raise_with_secret(data: dict[str, str]) -> None:
    token = data["token"]  # noqa: F841 (a local that a traceback with locals would show)
    try:
        raise KeyError(data["email"])
    except KeyError as error:
        raise ValueError(f"message {data['street']}") from error


def test_a_traceback_keeps_the_stack_and_types_but_no_message_or_local() -> None:
    try:
        _raise_with_secret(CANARIES)
    except ValueError as error:
        text = traceback_without_messages(error)
        event = dict(sanitize_exception(None, "error", {"event": "boom", "exc_info": error}))
    for canary in CANARIES.values():
        assert canary not in text
    assert "_raise_with_secret" in text
    assert "ValueError" in text
    assert "KeyError" in text
    assert event["exception"] == text
    assert event["error"] == "ValueError"
    assert "exc_info" not in event
