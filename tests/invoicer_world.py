"""Builds what the invoicer's tests and bench/close.py close: a catalog, customers, due subscriptions, usage.

Everything goes through the production code (catalog use cases, the domain's
``create_subscription``, the store's row mapping), except usage events, which are inserted in
bulk with plain SQL (their ingest path has its own tests). Each subscription is made as if its
first invoice had been issued: its next boundary is one period after its start, in the past, so
exactly one close is due, with usage in its window.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from billing.domain.catalog import (
    AddOn,
    Aggregation,
    Catalog,
    Coupon,
    CouponDuration,
    Interval,
    Meter,
    Plan,
    Price,
    Product,
    Recurring,
    UsageBinding,
)
from billing.domain.customer import Address, Customer
from billing.domain.pricing import Graduated, PerUnit, Tier, Volume
from billing.domain.subscriptions import NewSubscription, create_subscription
from billing.store import subscriptions as rows
from billing.store.catalog_snapshot import load_catalog
from billing.store.ids import new_id
from billing.store.unit_of_work import PostgresUnitOfWork
from rating.usecases import catalog as catalog_usecases
from rating.usecases import customers as customer_usecases

SEAT_PRICE = 2900  # minor units per seat and month
MESSAGE_PRICE = 3  # minor units per message (the storm's one usage price)


@dataclass(frozen=True)
class SimpleCatalog:
    """Seats at 29.00 and messages at 0.03 per unit: totals a test can compute by hand."""

    seat_price: str
    message_price: str
    meter: str


@dataclass(frozen=True)
class RealisticCatalog:
    """bench/close.py's plan: seats, three usage prices (graduated on email, per-unit on SMS,
    volume on resolved conversations), an add-on and a 20 % coupon."""

    plan: str
    addon: str
    coupon_code: str
    messages: str
    conversations: str


async def _in_uow(pool: asyncpg.Pool[Any], work: Any) -> Any:
    async with PostgresUnitOfWork(pool) as uow:
        result = await work(uow)
        await uow.commit()
    return result


async def simple_catalog(pool: asyncpg.Pool[Any]) -> SimpleCatalog:
    async def work(uow: PostgresUnitOfWork) -> SimpleCatalog:
        seats = await catalog_usecases.create_product(uow, Product("", "Seats"))
        messages = await catalog_usecases.create_product(uow, Product("", "Messages"))
        meter = await catalog_usecases.create_meter(
            uow, Meter("", f"message-{uuid.uuid4().hex[:8]}", "Messages", Aggregation.SUM, "value")
        )
        monthly = Recurring(Interval.MONTH)
        seat = await catalog_usecases.create_price(
            uow, Price("", seats.id, "USD", PerUnit(Decimal(SEAT_PRICE)), monthly)
        )
        usage = await catalog_usecases.create_price(
            uow,
            Price("", messages.id, "USD", PerUnit(Decimal(MESSAGE_PRICE)), monthly, UsageBinding(meter.id)),
        )
        return SimpleCatalog(seat.id, usage.id, meter.id)

    result: SimpleCatalog = await _in_uow(pool, work)
    return result


async def realistic_catalog(pool: asyncpg.Pool[Any]) -> RealisticCatalog:
    async def work(uow: PostgresUnitOfWork) -> RealisticCatalog:
        tag = uuid.uuid4().hex[:8]
        seats = await catalog_usecases.create_product(uow, Product("", "Seats"))
        channels = await catalog_usecases.create_product(uow, Product("", "Messaging"))
        ai = await catalog_usecases.create_product(uow, Product("", "AI agent"))
        extra = await catalog_usecases.create_product(uow, Product("", "Analytics add-on"))
        messages = await catalog_usecases.create_meter(
            uow, Meter("", f"message-{tag}", "Messages", Aggregation.SUM, "value", ("channel",))
        )
        conversations = await catalog_usecases.create_meter(
            uow, Meter("", f"conversation-{tag}", "Conversations", Aggregation.COUNT, "", ("outcome",))
        )
        monthly = Recurring(Interval.MONTH)
        seat = await catalog_usecases.create_price(
            uow, Price("", seats.id, "USD", PerUnit(Decimal(2900)), monthly)
        )
        email = await catalog_usecases.create_price(
            uow,
            Price(
                "",
                channels.id,
                "USD",
                Graduated(
                    (
                        Tier(Decimal(1000), Decimal(0)),
                        Tier(Decimal(10000), Decimal("0.5")),
                        Tier(None, Decimal("0.2")),
                    )
                ),
                monthly,
                UsageBinding(messages.id, (("channel", "email"),)),
            ),
        )
        sms = await catalog_usecases.create_price(
            uow,
            Price(
                "",
                channels.id,
                "USD",
                PerUnit(Decimal("1.25")),
                monthly,
                UsageBinding(messages.id, (("channel", "sms"),)),
            ),
        )
        resolved = await catalog_usecases.create_price(
            uow,
            Price(
                "",
                ai.id,
                "USD",
                Volume((Tier(Decimal(100), Decimal(99)), Tier(None, Decimal(79), Decimal(500)))),
                monthly,
                UsageBinding(conversations.id, (("outcome", "resolved"),)),
            ),
        )
        addon_price = await catalog_usecases.create_price(
            uow, Price("", extra.id, "USD", PerUnit(Decimal(1500)), monthly)
        )
        addon = await catalog_usecases.create_addon(uow, AddOn("", "Analytics", addon_price.id))
        plan = await catalog_usecases.create_plan(
            uow, Plan("", "Advanced", seat.id, (email.id, sms.id, resolved.id))
        )
        code = f"SAVE20-{tag}"
        await catalog_usecases.create_coupon(
            uow, Coupon("", code, "20 % off", CouponDuration.FOREVER, percent_off=Decimal(20))
        )
        return RealisticCatalog(plan.id, addon.id, code, messages.id, conversations.id)

    result: RealisticCatalog = await _in_uow(pool, work)
    return result


async def customers(pool: asyncpg.Pool[Any], count: int, *, country: str = "DE") -> list[str]:
    async def work(uow: PostgresUnitOfWork) -> list[str]:
        made = []
        for index in range(count):
            customer = Customer("", f"Customer {index}", "USD", billing_address=Address(country=country))
            made.append((await customer_usecases.create_customer(uow, customer)).id)
        return made

    result: list[str] = await _in_uow(pool, work)
    return result


async def subscribe(
    pool: asyncpg.Pool[Any],
    catalog: Catalog,
    customer_ids: Sequence[str],
    *,
    start: datetime,
    seats: Sequence[int],
    plan_id: str | None = None,
    prices: Sequence[str] = (),
    add_on_ids: tuple[str, ...] = (),
    coupon_codes: tuple[str, ...] = (),
    first_invoice_done: bool = True,
) -> list[str]:
    """One subscription per customer, started at ``start`` (monthly). With ``first_invoice_done``
    the close of ``start`` is taken as done, so the close one period later is the one due."""
    from billing.domain.subscriptions import PriceItem

    records = []
    for customer_id, seat_count in zip(customer_ids, seats, strict=True):
        items = tuple(
            PriceItem(p, Decimal(seat_count) if i == 0 else Decimal(1)) for i, p in enumerate(prices)
        )
        new = NewSubscription(
            id=new_id("sub"),
            customer_id=customer_id,
            currency="USD",
            time_zone="UTC",
            plan_id=plan_id,
            seats=Decimal(seat_count),
            add_on_ids=add_on_ids,
            prices=items,
            coupon_codes=coupon_codes,
            start=start,
        )
        sub = create_subscription(new, catalog, start)
        if first_invoice_done:
            sub = dataclasses.replace(sub, next_boundary=sub.next_boundary + 1)
        records.append(
            rows.SubscriptionRecord(
                id=sub.id,
                customer_id=customer_id,
                currency="USD",
                status=sub.status.value,
                state=sub,
                next_boundary_at=sub.next_close_at,
            )
        )
    async with pool.acquire() as connection, connection.transaction():
        for record in records:
            await rows.insert(connection, record)
        await connection.execute("ANALYZE subscriptions")
    return [r.id for r in records]


async def add_usage(
    pool: asyncpg.Pool[Any],
    events: Sequence[tuple[str, str, datetime, Decimal | None, dict[str, str]]],
) -> None:
    """Insert accepted events ``(customer, meter, occurred_at, value, properties)`` in bulk."""
    import json

    async with pool.acquire() as connection:
        await connection.execute(
            """
            INSERT INTO usage_events (occurred_at, idempotency_key, customer_id, meter_id, properties, value)
            SELECT t.at, t.key, t.customer, t.meter, t.props::jsonb, t.value
            FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::numeric[])
                AS t(at, key, customer, meter, props, value)
            """,
            [e[2] for e in events],
            [uuid.uuid4().hex for _ in events],
            [e[0] for e in events],
            [e[1] for e in events],
            [json.dumps(e[4]) for e in events],
            [e[3] for e in events],
        )


async def snapshot(pool: asyncpg.Pool[Any]) -> Catalog:
    return await load_catalog(pool)


def month_ago(now: datetime | None = None, *, days: int = 3) -> datetime:
    """A start one month and ``days`` before ``now``: its second boundary is ``days`` ago."""
    now = now or datetime.now(UTC)
    month = now.month - 1 or 12
    year = now.year if now.month > 1 else now.year - 1
    return (now.replace(year=year, month=month, day=min(now.day, 28)) - timedelta(days=days)).replace(
        microsecond=0
    )
