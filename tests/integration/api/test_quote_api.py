"""Live quotes through the real server: hand-checked totals and catalog freshness."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import grpc
from google.protobuf import field_mask_pb2

from billing.v1 import catalog_pb2 as pb
from billing.v1 import catalog_pb2_grpc, rating_pb2, rating_pb2_grpc
from rating.server import RunningServer
from tests.integration.api import builders
from tests.integration.api.rpc import failure, field_violations, request_id

Catalog = catalog_pb2_grpc.CatalogServiceStub
Rating = rating_pb2_grpc.RatingServiceStub


async def caught_up(server: RunningServer, url: str, within: float = 1.0) -> float:
    """Wait until the server's snapshot has the database's catalog version; return how long it took."""
    connection = await asyncpg.connect(url)
    try:
        target = await connection.fetchval("SELECT version FROM catalog_state")
    finally:
        await connection.close()
    started = time.monotonic()
    while server.cache.version() < target:
        assert time.monotonic() - started < within, "catalog change not visible to quotes in time"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def _helpdesk_catalog(stub: Catalog) -> dict[str, str]:
    seats = await builders.product(stub, "Helpdesk seats")
    conversations = await builders.product(stub, "Conversations")
    ai = await builders.product(stub, "AI agent")
    extra = await builders.product(stub, "Analytics")
    messages = await builders.meter(stub, dimensions=("channel",))
    outcomes = await builders.meter(stub, dimensions=("outcome",))
    seat = await builders.price(stub, builders.per_unit(seats.name, "1900"))
    whatsapp = await builders.price(
        stub,
        builders.graduated(
            conversations.name, messages.name, [("1000", "2.5", "0"), ("", "1.8", "0")], channel="whatsapp"
        ),
    )
    resolved = await builders.price(
        stub, builders.graduated(ai.name, outcomes.name, [("", "99", "0")], outcome="resolved")
    )
    addon_price = await builders.price(stub, builders.per_unit(extra.name, "2900"))
    addon = await stub.CreateAddOn(
        pb.CreateAddOnRequest(
            add_on=pb.AddOn(display_name="Analytics", price=addon_price.name), request_id=request_id()
        )
    )
    plan_key = builders.unique("plan")
    await stub.CreatePlan(
        pb.CreatePlanRequest(
            plan=pb.Plan(
                display_name="Advanced",
                seat_price=seat.name,
                usage_prices=[whatsapp.name, resolved.name],
                lookup_key=plan_key,
            ),
            request_id=request_id(),
        )
    )
    code = builders.unique("SEATS20")
    await stub.CreateCoupon(
        pb.CreateCouponRequest(
            coupon=pb.Coupon(
                code=code,
                display_name="20% off seats",
                percent_off="20",
                duration=pb.COUPON_DURATION_ONCE,
                applies_to_products=[seats.name],
            ),
            request_id=request_id(),
        )
    )
    return {
        "plan": plan_key,
        "coupon": code,
        "addon": addon.add_on.name,
        "messages": messages.event_name,
        "outcomes": outcomes.event_name,
    }


async def test_a_realistic_cart_is_priced_to_the_cent(
    catalog_stub: Catalog, rating_stub: Rating, rating_server: RunningServer, migrated_url: str
) -> None:
    names = await _helpdesk_catalog(catalog_stub)
    await caught_up(rating_server, migrated_url)
    request = rating_pb2.QuoteRequest(
        currency="USD",
        plan=rating_pb2.PlanSelector(lookup_key=names["plan"]),
        seats="5",
        add_ons=[names["addon"]],
        usage=[
            rating_pb2.UsageEstimate(
                meter=names["messages"],
                quantity="1200",
                properties=[pb.PropertyFilter(key="channel", value="whatsapp")],
            ),
            rating_pb2.UsageEstimate(
                meter=names["outcomes"],
                quantity="300",
                properties=[pb.PropertyFilter(key="outcome", value="resolved")],
            ),
        ],
        coupon_codes=[names["coupon"]],
    )
    quote = (await rating_stub.Quote(request)).quote
    amounts = [(line.kind, line.amount, line.total) for line in quote.lines]
    assert amounts == [
        (rating_pb2.LINE_KIND_SEAT, 9500, 7600),  # 5 x 1900 = 9500; 20 % off = 1900
        (rating_pb2.LINE_KIND_USAGE, 2860, 2860),  # 1000 x 2.5 + 200 x 1.8 = 2500 + 360
        (rating_pb2.LINE_KIND_USAGE, 29700, 29700),  # 300 resolved x 99
        (rating_pb2.LINE_KIND_ADD_ON, 2900, 2900),
    ]
    assert (quote.subtotal, quote.discount_total, quote.total) == (44960, 1900, 43060)
    assert [t.quantity for t in quote.lines[1].tiers] == ["1000", "200"]
    assert quote.catalog_version == rating_server.cache.version()


async def test_a_new_price_version_is_quoted_within_one_second(
    catalog_stub: Catalog, rating_stub: Rating, rating_server: RunningServer, migrated_url: str
) -> None:
    product = await builders.product(catalog_stub)
    key = builders.unique("seat")
    first = await builders.price(catalog_stub, builders.per_unit(product.name, "1000", lookup_key=key))
    await caught_up(rating_server, migrated_url)
    item = rating_pb2.QuoteItem(price=rating_pb2.PriceSelector(lookup_key=key), quantity="3")
    before = (await rating_stub.Quote(rating_pb2.QuoteRequest(currency="USD", items=[item]))).quote
    assert before.total == 3000

    await builders.price(
        catalog_stub,
        builders.per_unit(product.name, "1200", lookup_key=key, supersedes=first.name),
        transfer_lookup_key=True,
    )
    started = time.monotonic()
    while True:
        after = (await rating_stub.Quote(rating_pb2.QuoteRequest(currency="USD", items=[item]))).quote
        if after.total == 3600:
            break
        assert time.monotonic() - started < 1.0, "the new version was not quoted within one second"
        await asyncio.sleep(0.01)
    assert after.catalog_version > before.catalog_version


async def test_quotes_during_plan_changes_never_mix_two_catalog_versions(
    catalog_stub: Catalog, rating_stub: Rating, rating_server: RunningServer, migrated_url: str
) -> None:
    """Each plan update moves its seat and usage prices together, to amounts k and k.

    A quote that mixed two snapshots would show a seat amount and a usage amount from
    different steps.
    """
    product = await builders.product(catalog_stub)
    meter = await builders.meter(catalog_stub, dimensions=())

    async def prices(k: int) -> tuple[str, str]:
        seat = await builders.price(catalog_stub, builders.per_unit(product.name, str(k)))
        usage = await builders.price(
            catalog_stub, builders.graduated(product.name, meter.name, [("", str(k), "0")])
        )
        return seat.name, usage.name

    seat, usage = await prices(1)
    key = builders.unique("moving")
    plan = (
        await catalog_stub.CreatePlan(
            pb.CreatePlanRequest(
                plan=pb.Plan(display_name="Moving", seat_price=seat, usage_prices=[usage], lookup_key=key),
                request_id=request_id(),
            )
        )
    ).plan
    await caught_up(rating_server, migrated_url)
    stop = asyncio.Event()
    request = rating_pb2.QuoteRequest(
        currency="USD",
        plan=rating_pb2.PlanSelector(lookup_key=key),
        usage=[rating_pb2.UsageEstimate(meter=meter.event_name, quantity="1")],
    )
    seen: set[tuple[int, int]] = set()

    async def quoting() -> None:
        while not stop.is_set():
            quote = (await rating_stub.Quote(request)).quote
            seen.add((quote.lines[0].amount, quote.lines[1].amount))

    readers = [asyncio.create_task(quoting()) for _ in range(4)]
    for k in range(2, 12):
        seat, usage = await prices(k)
        await catalog_stub.UpdatePlan(
            pb.UpdatePlanRequest(
                plan=pb.Plan(name=plan.name, seat_price=seat, usage_prices=[usage]),
                update_mask=field_mask_pb2.FieldMask(paths=["seat_price", "usage_prices"]),
                request_id=request_id(),
            )
        )
        await asyncio.sleep(0.05)
    await caught_up(rating_server, migrated_url)
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*readers)
    assert all(seat_amount == usage_amount for seat_amount, usage_amount in seen), seen
    assert len(seen) > 3, "the quotes did not observe the plan changing"


async def test_a_quote_in_the_customers_currency_needs_prices_in_that_currency(
    catalog_stub: Catalog,
    rating_stub: Rating,
    rating_server: RunningServer,
    migrated_url: str,
    customer_stub: object,
) -> None:
    product = await builders.product(catalog_stub)
    key = builders.unique("usd")
    await builders.price(catalog_stub, builders.per_unit(product.name, "500", lookup_key=key))
    await caught_up(rating_server, migrated_url)
    item = rating_pb2.QuoteItem(price=rating_pb2.PriceSelector(lookup_key=key))
    error = await failure(rating_stub.Quote(rating_pb2.QuoteRequest(currency="EUR", items=[item])))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"items[0].price"}


async def test_an_inline_price_is_quoted_without_being_published(
    catalog_stub: Catalog, rating_stub: Rating, migrated_url: str
) -> None:
    draft = pb.Price(
        currency="JPY",
        volume=pb.TieredModel(tiers=[pb.Tier(up_to="10", unit_amount="500"), pb.Tier(unit_amount="450.5")]),
    )
    item = rating_pb2.QuoteItem(price=rating_pb2.PriceSelector(inline=draft), quantity="11")
    quote = (await rating_stub.Quote(rating_pb2.QuoteRequest(currency="JPY", items=[item]))).quote
    # Volume: all 11 units at the second tier's 450.5 yen = 4955.5, rounded half-up once to 4956.
    assert quote.lines[0].exact_amount == "4955.5"
    assert quote.total == 4956
    assert quote.lines[0].price == ""


async def test_a_quote_with_an_overlong_repeated_field_is_refused_before_it_is_priced(
    rating_stub: Rating,
) -> None:
    # Quote decodes its own bytes (the cache answers from them): the bound on repeated fields
    # that every other method gets from its deserializer must hold here too.
    request = rating_pb2.QuoteRequest(currency="USD", coupon_codes=["LAUNCH20"] * 10_001)
    error = await failure(rating_stub.Quote(request))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == {"coupon_codes": "at most 10000 entries are allowed"}
