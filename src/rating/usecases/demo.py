"""The demo catalog of a customer-service software company, loaded by ``billing seed-demo``.

Three seat tiers monthly and yearly, usage per channel with tiers, an AI agent billed only per
resolved conversation, two add-ons and a coupon limited to one product. Amounts are USD cents.
"""

from __future__ import annotations

from decimal import Decimal

from billing.domain.catalog import (
    AddOn,
    Aggregation,
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
from billing.domain.pricing import Graduated, PerUnit, PriceModel, Tier, Volume
from rating.usecases import catalog
from rating.usecases.ports import UnitOfWork

USD = "USD"
MONTHLY = Recurring(Interval.MONTH)
YEARLY = Recurring(Interval.YEAR)
D = Decimal

# (tier, monthly seat price, yearly seat price): yearly is about two months free.
SEAT_TIERS = (("Essential", "1900", "19000"), ("Advanced", "4900", "49000"), ("Expert", "9900", "99000"))

# Per-channel usage: graduated for messages, volume for phone minutes.
CHANNEL_PRICES: tuple[tuple[str, str, PriceModel], ...] = (
    ("email", "Email conversations", Graduated((Tier(D(1000), D(0)), Tier(None, D("0.5"))))),
    (
        "sms",
        "SMS messages",
        Graduated((Tier(D(500), D("1.5")), Tier(D(5000), D("1.2")), Tier(None, D("0.9")))),
    ),
    ("whatsapp", "WhatsApp messages", Graduated((Tier(D(1000), D("2.5")), Tier(None, D("1.8"), D(0))))),
    ("phone", "Phone minutes", Volume((Tier(D(1000), D("4")), Tier(D(10000), D("3")), Tier(None, D("2.2"))))),
)


async def seed_demo_catalog(uow: UnitOfWork) -> bool:
    """Create the demo catalog unless the catalog already has products. Returns whether it did."""
    if await uow.entities.list(Product, after=None, limit=1, show_archived=True):
        return False
    seats = await catalog.create_product(uow, Product("", "Helpdesk seats", tax_code="saas"))
    usage = await catalog.create_product(uow, Product("", "Conversations", tax_code="saas"))
    ai = await catalog.create_product(uow, Product("", "AI agent resolutions", tax_code="saas"))
    messages = await catalog.create_meter(
        uow,
        Meter("", "conversation.message", "Messages and minutes", Aggregation.SUM, "quantity", ("channel",)),
    )
    conversations = await catalog.create_meter(
        uow, Meter("", "ai_agent.conversation", "AI agent conversations", Aggregation.COUNT, "", ("outcome",))
    )
    usage_prices = []
    for channel, nickname, model in CHANNEL_PRICES:
        usage_prices.append(
            await _price(
                uow,
                usage.id,
                model,
                MONTHLY,
                f"{channel}-monthly",
                nickname,
                UsageBinding(messages.id, (("channel", channel),)),
            )
        )
    resolved = await _price(
        uow,
        ai.id,
        PerUnit(D(99)),
        MONTHLY,
        "ai-resolution-monthly",
        "Resolved conversation",
        UsageBinding(conversations.id, (("outcome", "resolved"),)),
    )
    addons = []
    for name, amount in (("Advanced analytics", "2900"), ("Workforce management", "3900")):
        product = await catalog.create_product(uow, Product("", name, tax_code="saas"))
        price = await _price(uow, product.id, PerUnit(D(amount)), MONTHLY, None, name)
        addons.append(await catalog.create_addon(uow, AddOn("", name, price.id)))
    for tier, monthly, yearly in SEAT_TIERS:
        key = tier.lower()
        for recurring, amount, suffix in ((MONTHLY, monthly, "monthly"), (YEARLY, yearly, "yearly")):
            seat = await _price(
                uow,
                seats.id,
                PerUnit(D(amount)),
                recurring,
                f"{key}-seat-{suffix}",
                f"{tier} seat ({suffix})",
            )
            included = tuple(a.id for a in addons) if tier == "Expert" else ()
            metered = (*(p.id for p in usage_prices), resolved.id) if suffix == "monthly" else ()
            await catalog.create_plan(
                uow, Plan("", f"{tier} ({suffix})", seat.id, metered, included, lookup_key=f"{key}-{suffix}")
            )
    await catalog.create_coupon(
        uow,
        Coupon(
            "",
            "LAUNCH20",
            "20% off seats for 3 months",
            CouponDuration.REPEATING,
            percent_off=D(20),
            duration_in_months=3,
            applies_to_products=(seats.id,),
        ),
    )
    return True


async def _price(
    uow: UnitOfWork,
    product_id: str,
    model: PriceModel,
    recurring: Recurring,
    lookup_key: str | None,
    nickname: str,
    usage: UsageBinding | None = None,
) -> Price:
    price = Price("", product_id, USD, model, recurring, usage, lookup_key, nickname)
    return await catalog.create_price(uow, price)
