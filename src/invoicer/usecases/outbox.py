"""Delivering outbox events.

A stub for now: the relay marks events delivered without sending them anywhere. Signed webhooks
(Standard Webhooks) with retries replace it in the webhooks issue; the claim and the delivered
mark are already what that relay needs.
"""

from __future__ import annotations

from invoicer.usecases.ports import OutboxStore


async def deliver_events(store: OutboxStore, batch: int = 500) -> int:
    """Deliver every pending event, a batch at a time; how many were delivered."""
    delivered = 0
    while True:
        count = await store.deliver_pending(batch)
        delivered += count
        if count < batch:
            return delivered
