"""Every kind of bad input gets the right status, names the field, and writes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from billing.v1 import catalog_pb2 as pb
from billing.v1 import customer_pb2 as cpb
from billing.v1 import rating_pb2 as rpb
from tests.integration.api.rpc import failure, field_violations, request_id

Stubs = dict[str, Any]


def _price(**model: Any) -> pb.CreatePriceRequest:
    fields = {"product": "products/prod_x", "currency": "USD", **model}
    return pb.CreatePriceRequest(price=pb.Price(**fields), request_id=request_id())


def _tiers(*tiers: tuple[str, str]) -> pb.TieredModel:
    return pb.TieredModel(tiers=[pb.Tier(up_to=u, unit_amount=a) for u, a in tiers])


def _quote(**fields: Any) -> rpb.QuoteRequest:
    return rpb.QuoteRequest(**{"currency": "USD", **fields})


def _item(quantity: str) -> rpb.QuoteItem:
    return rpb.QuoteItem(price=rpb.PriceSelector(lookup_key="whatever"), quantity=quantity)


CASES: list[tuple[str, Callable[[Stubs], Awaitable[Any]], dict[str, str] | set[str]]] = [
    ("negative quantity", lambda s: s["rating"].Quote(_quote(items=[_item("-1")])), {"items[0].quantity"}),
    ("exponent quantity", lambda s: s["rating"].Quote(_quote(items=[_item("1e3")])), {"items[0].quantity"}),
    (
        "13 decimal places",
        lambda s: s["rating"].Quote(_quote(items=[_item("0.0000000000001")])),
        {"items[0].quantity"},
    ),
    ("unknown currency", lambda s: s["rating"].Quote(_quote(currency="XXX")), {"currency"}),
    ("no currency nor customer", lambda s: s["rating"].Quote(rpb.QuoteRequest()), {"billed_to"}),
    (
        "unsorted tiers",
        lambda s: s["catalog"].CreatePrice(_price(graduated=_tiers(("10", "1"), ("5", "1"), ("", "1")))),
        {"price.graduated.tiers[1].up_to"},
    ),
    (
        "equal tier bounds",
        lambda s: s["catalog"].CreatePrice(_price(volume=_tiers(("10", "1"), ("10", "1"), ("", "1")))),
        {"price.volume.tiers[1].up_to"},
    ),
    (
        "no open last tier",
        lambda s: s["catalog"].CreatePrice(_price(graduated=_tiers(("10", "1"), ("20", "1")))),
        {"price.graduated.tiers[1].up_to"},
    ),
    ("no price model", lambda s: s["catalog"].CreatePrice(_price()), {"price.model"}),
    (
        "negative unit amount",
        lambda s: s["catalog"].CreatePrice(_price(per_unit=pb.PerUnitModel(unit_amount="-5"))),
        {"price.per_unit.unit_amount"},
    ),
    (
        "meter summing nothing",
        lambda s: s["catalog"].CreateMeter(
            pb.CreateMeterRequest(
                meter=pb.Meter(event_name="e", display_name="E", aggregation=pb.AGGREGATION_SUM),
                request_id=request_id(),
            )
        ),
        {"meter.value_property"},
    ),
    (
        "customer with unknown time zone",
        lambda s: s["customer"].CreateCustomer(
            cpb.CreateCustomerRequest(
                customer=cpb.Customer(display_name="A", currency="USD", time_zone="Mars/Olympus"),
                request_id=request_id(),
            )
        ),
        {"customer.time_zone"},
    ),
    (
        "negative page size",
        lambda s: s["catalog"].ListProducts(pb.ListProductsRequest(page_size=-1)),
        {"page_size"},
    ),
    (
        "forged page token",
        lambda s: s["catalog"].ListProducts(pb.ListProductsRequest(page_token="!!")),
        {"page_token"},
    ),
]


@pytest.mark.parametrize(("case", "call", "fields"), CASES, ids=[c[0] for c in CASES])
async def test_bad_input_is_an_invalid_argument_naming_the_field(
    case: str,
    call: Callable[[Stubs], Awaitable[Any]],
    fields: set[str],
    catalog_stub: Any,
    rating_stub: Any,
    customer_stub: Any,
) -> None:
    stubs = {"catalog": catalog_stub, "rating": rating_stub, "customer": customer_stub}
    error = await failure(call(stubs))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert set(field_violations(error)) == set(fields)


async def test_several_bad_fields_are_reported_together(catalog_stub: Any) -> None:
    request = pb.CreatePriceRequest(
        price=pb.Price(currency="usd", per_unit=pb.PerUnitModel(unit_amount="abc")), request_id=request_id()
    )
    error = await failure(catalog_stub.CreatePrice(request))
    assert {"price.product", "price.currency", "price.per_unit.unit_amount"} <= set(field_violations(error))


async def test_unknown_references_are_not_found(rating_stub: Any, customer_stub: Any) -> None:
    cases = [
        rating_stub.Quote(_quote(plan=rpb.PlanSelector(lookup_key="no-such-plan"))),
        rating_stub.Quote(_quote(items=[_item("1")])),
        rating_stub.Quote(rpb.QuoteRequest(customer="customers/cus_missing")),
        rating_stub.Quote(_quote(coupon_codes=["NO-SUCH-CODE"])),
        customer_stub.GetCustomer(cpb.GetCustomerRequest(name="customers/cus_missing")),
    ]
    for call in cases:
        assert (await failure(call)).code() == grpc.StatusCode.NOT_FOUND


async def test_a_duplicate_external_reference_is_already_exists(customer_stub: Any) -> None:
    crm = f"crm-{request_id()}"

    def create() -> cpb.CreateCustomerRequest:
        customer = cpb.Customer(
            display_name="Acme", currency="SEK", time_zone="Europe/Stockholm", crm_account_id=crm
        )
        return cpb.CreateCustomerRequest(customer=customer, request_id=request_id())

    await customer_stub.CreateCustomer(create())
    error = await failure(customer_stub.CreateCustomer(create()))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    found = await customer_stub.ListCustomers(cpb.ListCustomersRequest(crm_account_id=crm))
    assert len(found.customers) == 1


async def test_an_undecodable_request_is_not_unknown(channel: grpc.aio.Channel) -> None:
    call = channel.unary_unary(
        "/billing.v1.RatingService/Quote",
        request_serializer=lambda raw: raw,
        response_deserializer=lambda raw: raw,
    )
    error = await failure(call(b"\xff\xff\xff\xff"))
    assert error.code() not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.OK)


async def test_an_oversized_request_is_resource_exhausted(rating_stub: Any) -> None:
    huge = rpb.QuoteRequest(currency="USD", coupon_codes=["x" * (5 * 1024 * 1024)])
    error = await failure(rating_stub.Quote(huge))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
