"""Closing a subscription's boundary and finalizing its draft: one function each (issue 5).

Both rate with the domain's ``close_boundary``, the same function the API's invoice preview
runs; finalization runs it again on the draft's stored inputs with the usage, late lines and
credit balance of its own time, so late usage within the grace window is billed.
"""

from __future__ import annotations

import enum
from datetime import timedelta

from billing.domain.invoices import close_boundary
from invoicer.usecases.ports import C, Claim, InvoicerStore


class Did(enum.Enum):
    CLOSED = "closed"
    FINALIZED = "finalized"
    NOTHING = "nothing"


class Action(enum.Enum):
    FINALIZE = "finalize"
    CLOSE = "close"
    NONE = "none"


def due_action(claim: Claim) -> Action:
    """The subscription's earliest due action: finalizing a draft whose grace window ended comes
    before closing a later boundary."""
    now = claim.customer_now
    finalize_at, boundary_at = claim.finalize_due_at, claim.next_boundary_at
    if finalize_at is not None and finalize_at <= now and (boundary_at is None or finalize_at <= boundary_at):
        return Action.FINALIZE
    if boundary_at is not None and boundary_at <= now:
        return Action.CLOSE
    return Action.NONE


async def close_period(store: InvoicerStore[C], claim: C, grace: timedelta) -> str | None:
    """Draft the invoice of the subscription's next boundary; it is finalized ``grace`` after the
    boundary (customer time). Returns the draft's id, None when the close invoiced nothing."""
    inputs = await store.close_inputs(claim)
    result = close_boundary(inputs)
    boundary = inputs.subscription.boundary(inputs.boundary_index)
    return await store.commit_close(claim, inputs, result, boundary + grace)


async def finalize_invoice(store: InvoicerStore[C], claim: C) -> str | None:
    """Rate the earliest due draft again, number it and open it. Its number, or None if none is due."""
    found = await store.finalize_inputs(claim)
    if found is None:
        return None
    invoice_id, inputs = found
    return await store.commit_finalize(claim, invoice_id, inputs, close_boundary(inputs))


async def work_on(store: InvoicerStore[C], claim: C, grace: timedelta) -> Did:
    """Do the subscription's earliest due action: finalize a draft whose grace window ended, or
    close the next boundary. Both release the lease in their own transaction."""
    action = due_action(claim)
    if action is Action.FINALIZE:
        if await finalize_invoice(store, claim) is not None:
            return Did.FINALIZED
    elif action is Action.CLOSE:
        await close_period(store, claim, grace)
        return Did.CLOSED
    await store.release(claim)
    return Did.NOTHING
