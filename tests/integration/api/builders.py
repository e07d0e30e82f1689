"""Create catalog resources through the API with as little ceremony as a test needs."""

from __future__ import annotations

import uuid

from billing.v1 import catalog_pb2 as pb
from billing.v1 import catalog_pb2_grpc
from tests.integration.api.rpc import request_id


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def product(stub: catalog_pb2_grpc.CatalogServiceStub, name: str = "Seats") -> pb.Product:
    response = await stub.CreateProduct(
        pb.CreateProductRequest(product=pb.Product(display_name=name), request_id=request_id())
    )
    return response.product


async def meter(
    stub: catalog_pb2_grpc.CatalogServiceStub, dimensions: tuple[str, ...] = ("channel", "outcome")
) -> pb.Meter:
    response = await stub.CreateMeter(
        pb.CreateMeterRequest(
            meter=pb.Meter(
                event_name=unique("event"),
                display_name="Messages",
                aggregation=pb.AGGREGATION_SUM,
                value_property="quantity",
                dimensions=dimensions,
            ),
            request_id=request_id(),
        )
    )
    return response.meter


async def price(stub: catalog_pb2_grpc.CatalogServiceStub, message: pb.Price, **request: object) -> pb.Price:
    response = await stub.CreatePrice(
        pb.CreatePriceRequest(price=message, request_id=request_id(), **request)
    )
    return response.price


def per_unit(product_name: str, unit_amount: str, *, currency: str = "USD", **fields: object) -> pb.Price:
    return pb.Price(
        product=product_name,
        currency=currency,
        per_unit=pb.PerUnitModel(unit_amount=unit_amount),
        recurring=pb.Recurring(interval=pb.INTERVAL_MONTH),
        **fields,
    )


def graduated(
    product_name: str, meter_name: str, tiers: list[tuple[str, str, str]], **filters: str
) -> pb.Price:
    return pb.Price(
        product=product_name,
        currency="USD",
        graduated=pb.TieredModel(tiers=[pb.Tier(up_to=u, unit_amount=a, flat_amount=f) for u, a, f in tiers]),
        recurring=pb.Recurring(interval=pb.INTERVAL_MONTH),
        usage=pb.UsagePricing(
            meter=meter_name, filters=[pb.PropertyFilter(key=k, value=v) for k, v in filters.items()]
        ),
    )
