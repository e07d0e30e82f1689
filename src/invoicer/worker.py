"""The worker loop: claim due subscriptions, work on each under its lease, retry or park, drain.

- Bounded concurrency: at most ``concurrency`` subscriptions in flight; a claim asks for exactly
  the free slots, so nothing is leased that cannot be worked on at once.
- Wake-ups: a NOTIFY, a finished job or the poll interval, whichever comes first. NOTIFY is only
  a hint (it can be lost); the poll is what guarantees progress.
- Leases are renewed for every job in flight every ``renew_every`` seconds; a job whose lease
  was lost anyway cannot write (the store fences every write).
- Errors are translated here, once (the retry-or-park table below).
- Each job's outcome, duration and a lost lease are recorded by the injected ``JobMetrics``
  (``billing.metrics``): measurements only, no query.
- Shutdown (``stop()``, e.g. on SIGTERM): stop claiming, let jobs in flight finish within
  ``shutdown_grace``, cancel the rest and give their leases back, return.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Generic

import structlog
from opentelemetry import trace

from billing.domain.errors import (
    Aborted,
    FailedPrecondition,
    InvalidArgument,
    LeaseExpired,
    NotFound,
    Unavailable,
)
from billing.metrics import JobMetrics
from billing.telemetry import lean_tracer
from invoicer.usecases.periods import Did, due_action, work_on
from invoicer.usecases.ports import C, InvoicerStore

log = structlog.get_logger(__name__)

_OUTCOME = {Did.CLOSED: "closed", Did.FINALIZED: "finalized", Did.NOTHING: "released"}


@dataclass(frozen=True)
class WorkerConfig:
    concurrency: int = 16
    poll_interval: float = 1.0
    # The grace window of a draft, in the customer's time, before it is finalized.
    grace: timedelta = timedelta(hours=1)
    renew_every: float = 10.0
    shutdown_grace: float = 30.0


@dataclass
class WorkerStats:
    done: Counter[str] = field(default_factory=Counter)


class Worker(Generic[C]):
    def __init__(
        self,
        store: InvoicerStore[C],
        config: WorkerConfig = WorkerConfig(),
        metrics: JobMetrics | None = None,
    ) -> None:
        self._store = store
        self._config = config
        self._metrics = metrics or JobMetrics()
        # Built here, not at import: telemetry is configured after the modules are imported.
        self._tracer = lean_tracer("invoicer")
        self._jobs: dict[str, tuple[C, asyncio.Task[None]]] = {}
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.stats = WorkerStats()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self) -> None:
        async with self._store.listen(self._wake.set):
            renewer = asyncio.create_task(self._renew_leases())
            try:
                await self._claim_loop()
            finally:
                await self._drain()
                renewer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewer

    async def _claim_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            free = self._config.concurrency - len(self._jobs)
            claimed: list[C] = []
            if free > 0:
                try:
                    claimed = list(await self._store.claim(free))
                except Unavailable as error:
                    log.warning("claim failed", error=str(error))
                for claim in claimed:
                    self._start(claim)
            if free > 0 and len(claimed) == free:
                await asyncio.sleep(0)  # more may be due: claim again once these started
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._config.poll_interval)

    def _start(self, claim: C) -> None:
        task = asyncio.create_task(self._job(claim))
        self._jobs[claim.subscription_id] = (claim, task)

        def finished(_: asyncio.Task[None]) -> None:
            self._jobs.pop(claim.subscription_id, None)
            self._wake.set()

        task.add_done_callback(finished)

    async def _job(self, claim: C) -> None:
        bound = structlog.contextvars.bound_contextvars(
            subscription_id=claim.subscription_id, traceparent=claim.traceparent
        )
        # A sampled job span continues the trace of the RPC that wrote the row (DESIGN.md §8).
        attributes = {"subscription.id": claim.subscription_id}
        span = self._tracer.start_job_span("invoicer.work", claim.traceparent, attributes)
        traced = trace.use_span(span, end_on_exit=True) if span is not None else contextlib.nullcontext()
        # A job cancelled at shutdown counts as released: the drain gives its lease back.
        started, outcome = self._metrics.started(), "released"
        with bound, traced:
            try:
                did = await work_on(self._store, claim, self._config.grace)
                self.stats.done[did.value] += 1
                outcome = _OUTCOME[did]
            except Aborted as error:
                # Lease lost (do nothing: someone else holds it) or state changed (release: the
                # queue hands it out again at once). Release is a no-op without the lease.
                self.stats.done["aborted"] += 1
                if isinstance(error, LeaseExpired):
                    self._metrics.lease_expired()
                log.info("job aborted", reason=str(error))
                await self._quietly(self._store.release(claim))
            except (FailedPrecondition, NotFound, InvalidArgument) as error:
                # An inconsistency: retrying would give the same doubtful answer. A person looks.
                self.stats.done["parked"] += 1
                outcome = "parked"
                log.error("subscription parked", reason=str(error))
                await self._quietly(self._store.park(claim, f"{type(error).__name__}: {error}"))
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.stats.done["failed"] += 1
                reason = f"{type(error).__name__}: {error}"
                # The message only: a traceback's frames would carry customer data into the logs.
                log.warning("job failed", error=reason)
                parked = await self._quietly(self._store.fail(claim, reason))
                outcome = "parked" if parked else "retried"
                if parked:
                    self.stats.done["parked"] += 1
                    log.error("subscription parked", reason=parked)
            finally:
                self._metrics.finished(due_action(claim).value, outcome, started)

    async def _quietly(self, operation: Awaitable[object]) -> str | None:
        """Run a bookkeeping write; if the database is gone, the lease expires and the next claim
        records the attempt."""
        try:
            result = await operation
        except Exception as error:
            log.warning("bookkeeping write failed", error=f"{type(error).__name__}: {error}")
            return None
        return result if isinstance(result, str) else None

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(self._config.renew_every)
            claims = [claim for claim, _ in self._jobs.values()]
            if not claims:
                continue
            try:
                held = await self._store.renew(claims)
            except Exception as error:
                log.warning("lease renewal failed", error=f"{type(error).__name__}: {error}")
                continue
            lost = [c.subscription_id for c in claims if c.subscription_id not in held]
            if lost:
                # Their writes will be refused by the fencing check; nothing else to do.
                log.warning("leases lost", subscription_ids=lost[:20], count=len(lost))

    async def _drain(self) -> None:
        tasks = [task for _, task in self._jobs.values()]
        if tasks:
            log.info("draining jobs in flight", count=len(tasks), grace_seconds=self._config.shutdown_grace)
            _, pending = await asyncio.wait(tasks, timeout=self._config.shutdown_grace)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        # Whatever is still leased to us (cancelled jobs) goes back now, not after its expiry.
        with contextlib.suppress(Exception):
            released = await self._store.release_all()
            if released:
                log.info("leases released", count=released)
