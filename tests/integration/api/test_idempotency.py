"""request_id: a retried mutation returns the first answer and creates nothing new."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc

from billing.v1 import catalog_pb2 as pb
from billing.v1 import catalog_pb2_grpc
from tests.integration.api.builders import unique
from tests.integration.api.rpc import failure, field_violations, request_id

Stub = catalog_pb2_grpc.CatalogServiceStub


async def _count_products(url: str, display_name: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM products WHERE display_name = $1", display_name
        )
        return count
    finally:
        await connection.close()


def _create(name: str, rid: str, description: str = "") -> pb.CreateProductRequest:
    return pb.CreateProductRequest(
        product=pb.Product(display_name=name, description=description), request_id=rid
    )


async def test_a_retry_returns_the_first_answer_and_creates_nothing(
    catalog_stub: Stub, migrated_url: str
) -> None:
    name, rid = unique("retried"), request_id()
    first = await catalog_stub.CreateProduct(_create(name, rid))
    again = await catalog_stub.CreateProduct(_create(name, rid))
    assert again == first
    assert await _count_products(migrated_url, name) == 1


async def test_the_same_request_id_with_another_payload_is_a_failed_precondition(
    catalog_stub: Stub, migrated_url: str
) -> None:
    name, rid = unique("changed"), request_id()
    await catalog_stub.CreateProduct(_create(name, rid))
    error = await failure(catalog_stub.CreateProduct(_create(name, rid, description="different")))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await _count_products(migrated_url, name) == 1


async def test_the_same_request_id_on_another_method_is_a_failed_precondition(catalog_stub: Stub) -> None:
    rid = request_id()
    created = await catalog_stub.CreateProduct(_create(unique("method"), rid))
    error = await failure(
        catalog_stub.ArchiveProduct(pb.ArchiveProductRequest(name=created.product.name, request_id=rid))
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_concurrent_calls_with_one_request_id_create_exactly_one(
    catalog_stub: Stub, migrated_url: str
) -> None:
    name, rid = unique("concurrent"), request_id()
    answers = await asyncio.gather(*(catalog_stub.CreateProduct(_create(name, rid)) for _ in range(12)))
    assert len({a.product.name for a in answers}) == 1
    assert await _count_products(migrated_url, name) == 1


async def test_a_failed_mutation_leaves_its_request_id_unused(catalog_stub: Stub) -> None:
    rid = request_id()
    missing = pb.Price(
        product="products/prod_missing", currency="USD", per_unit=pb.PerUnitModel(unit_amount="1")
    )
    error = await failure(catalog_stub.CreatePrice(pb.CreatePriceRequest(price=missing, request_id=rid)))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    created = await catalog_stub.CreateProduct(_create(unique("after-failure"), rid))
    assert created.product.name


async def test_a_mutation_without_a_request_id_is_invalid(catalog_stub: Stub) -> None:
    error = await failure(catalog_stub.CreateProduct(_create(unique("no-id"), "")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"request_id"}
