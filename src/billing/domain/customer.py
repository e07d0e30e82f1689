"""Customers: who is billed, in which currency and time zone."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Address:
    line1: str = ""
    line2: str = ""
    city: str = ""
    postal_code: str = ""
    state: str = ""
    country: str = ""


@dataclass(frozen=True, slots=True)
class TaxId:
    type: str
    value: str


@dataclass(frozen=True, slots=True)
class Customer:
    """A billed account. ``currency`` never changes once set: invoices would stop adding up.

    ``crm_account_id`` and ``accounting_id`` tie the customer to the CRM and the accounting
    system; each is unique when set, so a sync can find the one customer it means.
    ``test_clock_id`` puts the customer in a test clock's simulated time, for good: moving it
    between clocks would make its periods jump. ``has_payment_method`` decides whether a trial
    that requires one converts or cancels at its end (docs/billing-rules.md §2).
    """

    id: str
    name: str
    currency: str
    time_zone: str = "UTC"
    email: str = ""
    billing_address: Address = field(default_factory=Address)
    tax_ids: tuple[TaxId, ...] = ()
    crm_account_id: str | None = None
    accounting_id: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    test_clock_id: str | None = None
    has_payment_method: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None
