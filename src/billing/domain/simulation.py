"""A history driver: one subscription's timed events through create, change, cancel and close.

Input (``History``, plain frozen dataclasses): a catalog, the subscription to create and when,
the customer, timed actions (``ChangeAt``, ``CancelAt``, ``ScheduleAt``), usage events (each with
the instant it happened and the instant it was received), and ``until``. The driver walks time
forward: before each action, and up to ``until``, it closes every due boundary; a closing
invoice is finalized ``grace`` after its boundary, so it rates the events received by then, and
events received later reach later closes as usage adjustments. Output (``SimulationResult``):
every invoice issued (closing invoices and ``always_invoice`` change invoices) in order, with
lines and totals in minor units, the final subscription and the credit balance.

It is the production code path run in memory, for golden scenarios and for the differential
test against the independent oracle in ``tests/oracle/``. Simplification: a closing invoice is
computed once, at its boundary, with the events received by its finalization (the invoicer
drafts at the boundary and re-rates at finalization; the finalized figures are the same).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from billing.domain.catalog import Catalog
from billing.domain.invoices import (
    BilledUsage,
    BillingCustomer,
    CloseInputs,
    InvoiceDraft,
    InvoiceLine,
    InvoiceLineKind,
    UsageWindow,
    close_boundary,
    proration_invoice,
    usage_windows,
)
from billing.domain.pricing import Usage
from billing.domain.subscriptions import (
    ChangeResult,
    Coverage,
    NewSubscription,
    ProrationBehavior,
    Subscription,
    SubscriptionChange,
    cancel_subscription,
    change_subscription,
    create_subscription,
    schedule_change,
)
from billing.domain.tax import BUILT_IN, TaxTable
from billing.domain.usage import MeteredEvent, aggregate, matches


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """An accepted usage event. ``received_at`` None means it arrived when it happened."""

    meter_id: str
    occurred_at: datetime
    value: Decimal | None = None
    properties: tuple[tuple[str, str], ...] = ()
    received_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ChangeAt:
    """``change`` requested at ``at`` (its ``proration_date``, when set, pins the instant)."""

    at: datetime
    change: SubscriptionChange


@dataclass(frozen=True, slots=True)
class CancelAt:
    at: datetime
    at_period_end: bool
    behavior: ProrationBehavior = ProrationBehavior.CREATE_PRORATIONS


@dataclass(frozen=True, slots=True)
class ScheduleAt:
    """``change`` scheduled at ``at`` for the end of the period running then."""

    at: datetime
    change: SubscriptionChange


Action = ChangeAt | CancelAt | ScheduleAt


@dataclass(frozen=True)
class History:
    catalog: Catalog
    subscription: NewSubscription
    created_at: datetime
    customer: BillingCustomer
    until: datetime
    actions: tuple[Action, ...] = ()
    usage: tuple[UsageEvent, ...] = ()
    tax_table: TaxTable = BUILT_IN
    credit_balance: int = 0
    grace: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class SimulationResult:
    invoices: tuple[InvoiceDraft, ...]
    subscription: Subscription
    credit_balance: int
    pending: tuple[InvoiceLine, ...] = field(default=())  # proration lines not yet invoiced


def simulate(history: History) -> SimulationResult:
    """Run ``history`` through the domain functions and return every invoice it issues.

    Actions run in order of ``at`` (ties in the given order); every boundary at or before an
    action's instant is closed before it, and every boundary up to ``until`` at the end.
    """
    return _Run(history).run()


class _Run:
    def __init__(self, history: History) -> None:
        self.h = history
        self.sub = create_subscription(history.subscription, history.catalog, history.created_at)
        self.coverages: dict[str, Coverage] = {}
        self.pending: list[InvoiceLine] = []
        self.invoices: list[InvoiceDraft] = []
        self.balance = history.credit_balance
        # Finalized usage lines by (price, window), with what has been billed for each so far.
        self.billed: dict[tuple[str, UsageWindow], tuple[InvoiceLine, int]] = {}

    def run(self) -> SimulationResult:
        for action in sorted(self.h.actions, key=lambda a: a.at):
            self._close_until(action.at)
            self._act(action)
        self._close_until(self.h.until)
        return SimulationResult(tuple(self.invoices), self.sub, self.balance, tuple(self.pending))

    def _act(self, action: Action) -> None:
        catalog, live = self.h.catalog, tuple(self.coverages.values())
        if isinstance(action, ScheduleAt):
            self.sub = schedule_change(self.sub, action.change, catalog, action.at)
            return
        if isinstance(action, ChangeAt):
            result = change_subscription(self.sub, action.change, catalog, live, action.at)
        else:
            result = cancel_subscription(
                self.sub,
                catalog,
                live,
                action.at,
                at_period_end=action.at_period_end,
                behavior=action.behavior,
            )
        self._record(result, action.at)

    def _record(self, result: ChangeResult, at: datetime) -> None:
        self.sub = result.subscription
        for coverage in (*result.credited, *result.added):
            self.coverages[coverage.id] = coverage
        if not result.invoice_now:
            self.pending.extend(result.lines)
            return
        draft = proration_invoice(
            self.sub, result.lines, self.h.catalog, self.h.customer, at, self.balance, self.h.tax_table
        )
        self._issue(draft)

    def _close_until(self, limit: datetime) -> None:
        while (due := self.sub.next_close_at) is not None and due <= limit:
            self._close()

    def _close(self) -> None:
        sub, k = self.sub, self.sub.next_boundary
        finalized = sub.boundary(k) + self.h.grace
        usage = {window: self._usage(window, finalized) for window in usage_windows(sub, k, self.h.catalog)}
        billed = [
            BilledUsage(line, amount, self._usage(window, finalized))
            for (_, window), (line, amount) in self.billed.items()
        ]
        result = close_boundary(
            CloseInputs(
                subscription=sub,
                catalog=self.h.catalog,
                customer=self.h.customer,
                boundary_index=k,
                usage=usage,
                pending_prorations=tuple(self.pending),
                coverages=tuple(self.coverages.values()),
                billed_usage=billed,
                credit_balance=self.balance,
                tax_table=self.h.tax_table,
            )
        )
        invoiced = {id(line) for line in result.prorations_invoiced}
        self.pending = [line for line in self.pending if id(line) not in invoiced]
        boundary = sub.boundary(k)
        self.coverages = {key: c for key, c in self.coverages.items() if c.period.end > boundary}
        self.coverages.update((c.id, c) for c in result.coverages)
        self.sub = result.subscription
        if result.draft is not None:
            self._issue(result.draft)

    def _issue(self, draft: InvoiceDraft) -> None:
        self.invoices.append(draft)
        self.balance = draft.credit_balance_after
        for line in draft.lines:
            if line.window is None:
                continue
            key = (line.price_id, line.window)
            if line.kind is InvoiceLineKind.USAGE:
                self.billed[key] = (line, line.amount)
            elif line.kind is InvoiceLineKind.USAGE_ADJUSTMENT:
                original, amount = self.billed[key]
                self.billed[key] = (original, amount + line.amount)

    def _usage(self, window: UsageWindow, received_by: datetime) -> Usage:
        meter = self.h.catalog.meter(window.meter_id)
        events = sorted(
            (
                (event.occurred_at, index, event)
                for index, event in enumerate(self.h.usage)
                if event.meter_id == window.meter_id
                and window.start <= event.occurred_at < window.end
                and (event.received_at or event.occurred_at) <= received_by
                and matches(dict(event.properties), window.filters)
            ),
            key=lambda entry: (entry[0], entry[1]),
        )
        metered = [MeteredEvent(e.occurred_at, dict(e.properties), e.value, i) for _, i, e in events]
        quantity = aggregate(meter, metered)
        if not window.transactions:
            return Usage(quantity)
        values = tuple(e.value or Decimal(0) for _, _, e in events)
        return Usage(quantity, transactions=values, transaction_count=len(values))
