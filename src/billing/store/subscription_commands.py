"""Subscriptions as the API writes them: the row, its coverages and pending proration lines, in
the caller's transaction (so a change and everything it creates commit together).

Built on the invoicer's row mapping (:mod:`billing.store.subscriptions`): every write bumps the
row's version, which is how a close rated before a change notices it and retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from billing.domain.catalog import Catalog
from billing.domain.errors import Aborted, FailedPrecondition
from billing.domain.invoices import (
    BillingCustomer,
    CloseInputs,
    InvoiceDraft,
)
from billing.domain.lines import InvoiceLine
from billing.domain.subscriptions import Coverage, Subscription, SubscriptionStatus
from billing.store import codec, invoicer_store, invoices, period_queue
from billing.store import subscriptions as rows
from billing.store._types import Connection
from billing.store.ids import new_id
from billing.tracing import current_traceparent

# The row's status column for each domain status; "ended" is the invoicer's, after the final close.
_STATUS = {status: status.value for status in SubscriptionStatus}


def _record(sub: Subscription, **fields: Any) -> rows.SubscriptionRecord:
    return rows.SubscriptionRecord(
        id=sub.id,
        customer_id=sub.customer_id,
        currency=sub.currency,
        status=_STATUS[sub.status],
        state=sub,
        next_boundary_at=sub.next_close_at,
        # The invoicer's job for this row continues the trace of the RPC that wrote it.
        traceparent=current_traceparent(),
        **fields,
    )


class SubscriptionRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def add(self, sub: Subscription) -> rows.SubscriptionRecord:
        return await rows.insert(self._connection, _record(sub))

    async def get(self, subscription_id: str, *, for_update: bool = False) -> rows.SubscriptionRecord:
        return await rows.get(self._connection, subscription_id, for_update=for_update)

    async def find(
        self,
        *,
        customer_id: str | None,
        status: SubscriptionStatus | None,
        after: str | None,
        limit: int,
        parked: bool = False,
    ) -> list[rows.SubscriptionRecord]:
        found = await self._connection.fetch(
            "SELECT id FROM subscriptions WHERE ($1::text IS NULL OR customer_id = $1) "
            "AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR id > $3) "
            "AND (NOT $5 OR parked_reason IS NOT NULL) ORDER BY id LIMIT $4",
            customer_id,
            None if status is None else _STATUS[status],
            after,
            limit,
            parked,
        )
        return [await rows.get(self._connection, row["id"]) for row in found]

    async def unpark(self, subscription_id: str) -> bool:
        return await period_queue.unpark(self._connection, subscription_id)

    async def save(self, row: Any, sub: Subscription) -> rows.SubscriptionRecord:
        record: rows.SubscriptionRecord = row
        return await rows.update(
            self._connection,
            rows.with_state(
                record,
                sub,
                status=_STATUS[sub.status],
                next_boundary_at=sub.next_close_at,
                traceparent=current_traceparent() or record.traceparent,
            ),
        )

    async def coverages(self, sub: Subscription) -> list[Coverage]:
        found = await self._connection.fetch(
            "SELECT coverage FROM subscription_coverages "
            "WHERE subscription_id = $1 AND credited_from IS NULL ORDER BY id",
            sub.id,
        )
        return [codec.from_json(Coverage, row["coverage"]) for row in found]

    async def save_coverages(self, subscription_id: str, coverages: Sequence[Coverage]) -> None:
        if not coverages:
            return
        await self._connection.executemany(
            "INSERT INTO subscription_coverages (subscription_id, id, period_end, credited_from, coverage) "
            "VALUES ($1, $2, $3, $4, $5::jsonb) ON CONFLICT (subscription_id, id) DO UPDATE "
            "SET credited_from = excluded.credited_from, coverage = excluded.coverage",
            [(subscription_id, c.id, c.period.end, c.credited_from, codec.to_json(c)) for c in coverages],
        )

    async def add_pending(self, subscription_id: str, lines: Sequence[InvoiceLine]) -> None:
        # One id stem and the line's position: the close reads pending lines in id order within
        # an instant, so they must reach the invoice in the order the change made them.
        stem = new_id("pl")
        await rows.add_pending_lines(
            self._connection,
            subscription_id,
            [(f"{stem}_{i:04d}", line.at or line.period.start, line) for i, line in enumerate(lines)],
        )

    async def redeem_coupons(self, coupon_ids: Sequence[str]) -> None:
        for coupon_id in coupon_ids:
            # Conditional, in this transaction: two concurrent redemptions of the last use cannot
            # both pass, whatever the in-memory catalog said.
            redeemed = await self._connection.fetchval(
                "UPDATE coupons SET times_redeemed = times_redeemed + 1 WHERE id = $1 "
                "AND (max_redemptions IS NULL OR times_redeemed < max_redemptions) RETURNING true",
                coupon_id,
            )
            if not redeemed:
                raise FailedPrecondition(
                    f"coupon {coupon_id!r} has been redeemed its maximum number of times"
                )

    async def billing_customer(self, customer_id: str) -> tuple[BillingCustomer, int]:
        return await invoicer_store.read_billing_customer(self._connection, customer_id)

    async def close_inputs(self, sub: Subscription, catalog: Catalog) -> CloseInputs:
        taxes = await invoicer_store.load_tax_table(self._connection)
        return await invoicer_store.read_close_inputs(self._connection, sub, catalog, taxes)

    async def invoice_now(self, sub: Subscription, draft: InvoiceDraft, test_clock_id: str | None) -> str:
        """The invoice of an ``always_invoice`` change, finalized at once: it has no usage that
        late events could change, so it needs no grace window (and the invoicer's finalization,
        which re-rates a boundary, has none to re-rate)."""
        connection, invoice_id = self._connection, new_id("in")
        record = await rows.get(connection, sub.id)
        await invoices.insert_draft(
            connection,
            draft,
            invoice_id=invoice_id,
            kind="proration",
            boundary=None,
            issuing_entity=record.issuing_entity,
            finalize_at=None,
            rating_inputs=None,
            test_clock_id=test_clock_id,
            traceparent=record.traceparent,
        )
        balance = await invoices.locked_balance(connection, draft.customer_id, draft.currency)
        if balance < draft.credit_applied:
            raise Aborted("the customer's credit balance changed while the invoice was rated; retry")
        await invoices.apply_balance(connection, invoice_id, draft)
        seq, number = await invoices.next_number(connection, record.issuing_entity)
        status = await invoices.finalize(connection, invoice_id, draft, number_seq=seq, number=number)
        payload = invoices.invoice_payload(invoice_id, draft, status, number)
        await invoices.emit(connection, "invoice.finalized", invoice_id, payload, record.traceparent)
        return invoice_id
