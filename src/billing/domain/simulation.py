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
from billing.domain.invoices import BillingCustomer, InvoiceDraft, InvoiceLine
from billing.domain.subscriptions import NewSubscription, ProrationBehavior, Subscription, SubscriptionChange
from billing.domain.tax import BUILT_IN, TaxTable


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
    """Run ``history`` through the domain functions and return every invoice it issues."""
    raise NotImplementedError
