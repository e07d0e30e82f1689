"""The upcoming invoice: the invoicer's close of the next boundary, computed and not stored."""

from __future__ import annotations

from datetime import datetime

from billing.domain.catalog import Catalog
from billing.domain.errors import FailedPrecondition
from billing.domain.invoices import InvoiceDraft, close_boundary
from billing.domain.subscriptions import Subscription
from rating.usecases.billing_ports import BillingUnitOfWork


async def preview_invoice(
    uow: BillingUnitOfWork, subscription_id: str, catalog: Catalog, now: datetime
) -> InvoiceDraft:
    """The invoice the next boundary will issue, with the usage recorded so far.

    ``close_boundary`` is the very function the invoicer runs, on inputs read by the same store
    code; only the writes are left out.
    """
    row = await uow.subscriptions.get(subscription_id)
    sub: Subscription = row.state
    if sub.next_close_at is None:
        raise FailedPrecondition(f"subscription {sub.id!r} has ended: it has no upcoming invoice")
    draft = close_boundary(await uow.subscriptions.close_inputs(sub, catalog)).draft
    if draft is None:
        raise FailedPrecondition(f"subscription {sub.id!r} has nothing to invoice at its next boundary")
    return draft
