"""The error hierarchy shared by every layer.

Errors are translated to transport status codes exactly once, at the edge (``rating.api.errors``).
Domain and use-case code raise these and never know about gRPC.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field: ``field`` is a dotted path into the request (``price.tiers[2].up_to``)."""

    field: str
    description: str


class BillingError(Exception):
    """Root of every error this project raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(BillingError):
    """The request itself is malformed; it can never succeed as sent."""

    def __init__(self, violations: Iterable[FieldViolation], message: str = "invalid request") -> None:
        self.violations = tuple(violations)
        detail = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(f"{message}: {detail}" if detail else message)

    @classmethod
    def single(cls, field: str, description: str) -> InvalidArgument:
        return cls([FieldViolation(field, description)])

    def prefixed(self, prefix: str) -> InvalidArgument:
        """The same violations with their field paths nested under ``prefix``."""
        return InvalidArgument(
            [FieldViolation(_join(prefix, v.field), v.description) for v in self.violations]
        )


class NotFound(BillingError):
    """A referenced resource does not exist."""


class AlreadyExists(BillingError):
    """A unique name, lookup key or external reference is taken."""


class FailedPrecondition(BillingError):
    """The request is well formed but the system is not in a state that allows it."""


class Aborted(BillingError):
    """A concurrent request with the same key is in flight; retry."""


class LeaseExpired(Aborted):
    """A worker's lease on a job ran out (or was taken over) before its write: it must not write."""


class Unavailable(BillingError):
    """A dependency (the database) is down; the caller may retry."""


class Unauthenticated(BillingError):
    """The caller presented no credential we know, or one that was revoked."""


class PermissionDenied(BillingError):
    """The caller is known but its credential does not grant what the call needs."""


class ResourceExhausted(BillingError):
    """The caller went over one of its limits; it may retry after ``retry_after_ms``."""

    def __init__(self, message: str, *, retry_after_ms: int) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms


def _join(prefix: str, field: str) -> str:
    if not field:
        return prefix
    if field.startswith("["):
        return f"{prefix}{field}"
    return f"{prefix}.{field}"


class Violations:
    """Collects field violations so one response names every bad field, not just the first.

    At most ``MAX_VIOLATIONS`` are kept, then a count of the rest: a request with 300,000 bad
    entries in a repeated field otherwise made an error of megabytes, which took the server
    seconds to build and which no client could receive (found by fuzzing).
    """

    MAX_VIOLATIONS = 100

    def __init__(self) -> None:
        self._items: list[FieldViolation] = []
        self._more = 0

    def add(self, field: str, description: str) -> None:
        if len(self._items) < self.MAX_VIOLATIONS:
            self._items.append(FieldViolation(field, description))
        else:
            self._more += 1

    def extend(self, error: InvalidArgument, prefix: str = "") -> None:
        source = error.prefixed(prefix) if prefix else error
        for violation in source.violations:
            self.add(violation.field, violation.description)

    def __bool__(self) -> bool:
        return bool(self._items)

    def raise_if_any(self) -> None:
        if self._items:
            more = [FieldViolation("", f"and {self._more} more problems")] if self._more else []
            raise InvalidArgument([*self._items, *more])
