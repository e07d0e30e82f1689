"""What the invoicer's use cases and worker need from storage (Protocols; the store implements them).

Errors crossing these ports are the domain's: ``Aborted`` (the lease was lost or the state
changed under us: release and let the queue hand it out again), ``FailedPrecondition`` and
``NotFound`` (an inconsistency: park), ``Unavailable`` (the database: back off and retry).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol, TypeVar

from billing.domain.invoices import CloseInputs, CloseResult


class Claim(Protocol):
    """A subscription leased to this worker, as it was when claimed."""

    @property
    def subscription_id(self) -> str: ...

    @property
    def customer_now(self) -> datetime:
        """ "Now" for the customer: its test clock's frozen time, or the real time."""
        ...

    @property
    def next_boundary_at(self) -> datetime | None: ...

    @property
    def finalize_due_at(self) -> datetime | None: ...

    @property
    def traceparent(self) -> str | None: ...


C = TypeVar("C", bound=Claim)


class InvoicerStore(Protocol[C]):
    async def claim(self, limit: int) -> Sequence[C]:
        """Lease up to ``limit`` subscriptions with a close or a finalization due."""
        ...

    async def renew(self, claims: Sequence[C]) -> set[str]:
        """Extend the leases; the subscription ids whose lease was still held."""
        ...

    async def release(self, claim: C) -> None: ...

    async def fail(self, claim: C, error: str) -> str | None:
        """Count a failed attempt and back off; the parked reason if this one parked it."""
        ...

    async def park(self, claim: C, reason: str) -> None: ...

    async def release_all(self) -> int:
        """Give back every lease this worker holds (shutdown)."""
        ...

    def listen(self, wake: Callable[[], None]) -> AbstractAsyncContextManager[None]:
        """While entered, call ``wake`` when new work may be due (a hint only)."""
        ...

    async def close_inputs(self, claim: C) -> CloseInputs: ...

    async def commit_close(
        self, claim: C, inputs: CloseInputs, result: CloseResult, finalize_at: datetime
    ) -> str | None:
        """Write the close, fenced; the new draft's id, or None when nothing was invoiced."""
        ...

    async def finalize_inputs(self, claim: C) -> tuple[str, CloseInputs] | None:
        """The earliest draft due for finalization and its inputs rated with today's data."""
        ...

    async def commit_finalize(
        self, claim: C, invoice_id: str, inputs: CloseInputs, result: CloseResult
    ) -> str:
        """Write the finalization, fenced; the invoice's number."""
        ...


class OutboxStore(Protocol):
    async def deliver_pending(self, limit: int) -> int:
        """Claim up to ``limit`` undelivered events, hand them on, mark them delivered."""
        ...
