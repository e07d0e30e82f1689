"""The catalog through the real gRPC server and a real database."""

from __future__ import annotations

import grpc
from google.protobuf import field_mask_pb2

from billing.v1 import catalog_pb2 as pb
from billing.v1 import catalog_pb2_grpc
from tests.integration.api import builders
from tests.integration.api.rpc import failure, field_violations, request_id

Stub = catalog_pb2_grpc.CatalogServiceStub


async def test_a_created_product_can_be_read_back_by_name(catalog_stub: Stub) -> None:
    created = await builders.product(catalog_stub, "Helpdesk seats")
    assert created.name.startswith("products/prod_")
    fetched = await catalog_stub.GetProduct(pb.GetProductRequest(name=created.name))
    assert fetched.product == created
    assert created.create_time.seconds > 0


async def test_products_are_listed_in_creation_order_page_by_page(catalog_stub: Stub) -> None:
    names = [(await builders.product(catalog_stub, f"Paged {i}")).name for i in range(5)]
    seen: list[str] = []
    token = ""
    while True:
        page = await catalog_stub.ListProducts(pb.ListProductsRequest(page_size=2, page_token=token))
        assert len(page.products) <= 2
        seen.extend(p.name for p in page.products)
        token = page.next_page_token
        if not token:
            break
    assert [n for n in seen if n in names] == names


async def test_an_update_changes_only_the_masked_fields(catalog_stub: Stub) -> None:
    created = await builders.product(catalog_stub, "Before")
    changed = pb.Product(name=created.name, display_name="After", description="ignored: not in mask")
    response = await catalog_stub.UpdateProduct(
        pb.UpdateProductRequest(
            product=changed,
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
            request_id=request_id(),
        )
    )
    assert response.product.display_name == "After"
    assert response.product.description == created.description


async def test_an_archived_product_is_hidden_from_lists_unless_asked_for(catalog_stub: Stub) -> None:
    created = await builders.product(catalog_stub, "Retired")
    archived = await catalog_stub.ArchiveProduct(
        pb.ArchiveProductRequest(name=created.name, request_id=request_id())
    )
    assert archived.product.archived

    async def listed(show_archived: bool) -> set[str]:
        names: set[str] = set()
        token = ""
        while True:
            page = await catalog_stub.ListProducts(
                pb.ListProductsRequest(page_size=1000, page_token=token, show_archived=show_archived)
            )
            names.update(p.name for p in page.products)
            token = page.next_page_token
            if not token:
                return names

    assert created.name not in await listed(False)
    assert created.name in await listed(True)


async def test_a_new_price_version_takes_the_lookup_key_and_the_old_stays_readable(
    catalog_stub: Stub,
) -> None:
    product = await builders.product(catalog_stub)
    key = builders.unique("seat")
    first = await builders.price(catalog_stub, builders.per_unit(product.name, "1900", lookup_key=key))
    assert first.version == 1
    second = await builders.price(
        catalog_stub,
        builders.per_unit(product.name, "2100", lookup_key=key, supersedes=first.name),
        transfer_lookup_key=True,
    )
    assert second.version == 2
    assert second.lookup_key == key
    old = (await catalog_stub.GetPrice(pb.GetPriceRequest(name=first.name))).price
    assert old.per_unit.unit_amount == "1900"
    assert old.lookup_key == ""
    by_key = await catalog_stub.ListPrices(pb.ListPricesRequest(lookup_key=key))
    assert [p.name for p in by_key.prices] == [second.name]


async def test_a_lookup_key_held_by_another_price_is_already_exists_without_transfer(
    catalog_stub: Stub,
) -> None:
    product = await builders.product(catalog_stub)
    key = builders.unique("taken")
    await builders.price(catalog_stub, builders.per_unit(product.name, "100", lookup_key=key))
    error = await failure(
        builders.price(catalog_stub, builders.per_unit(product.name, "200", lookup_key=key))
    )
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_a_price_version_can_be_superseded_only_once(catalog_stub: Stub) -> None:
    product = await builders.product(catalog_stub)
    first = await builders.price(catalog_stub, builders.per_unit(product.name, "100"))
    await builders.price(catalog_stub, builders.per_unit(product.name, "110", supersedes=first.name))
    error = await failure(
        builders.price(catalog_stub, builders.per_unit(product.name, "120", supersedes=first.name))
    )
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_the_amount_of_a_price_cannot_be_updated(catalog_stub: Stub) -> None:
    product = await builders.product(catalog_stub)
    price = await builders.price(catalog_stub, builders.per_unit(product.name, "100"))
    error = await failure(
        catalog_stub.UpdatePrice(
            pb.UpdatePriceRequest(
                price=builders.per_unit(product.name, "90", name=price.name),
                update_mask=field_mask_pb2.FieldMask(paths=["per_unit.unit_amount"]),
                request_id=request_id(),
            )
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "update_mask" in field_violations(error)
    unchanged = (await catalog_stub.GetPrice(pb.GetPriceRequest(name=price.name))).price
    assert unchanged.per_unit.unit_amount == "100"


async def test_a_usage_price_filter_must_name_a_meter_dimension(catalog_stub: Stub) -> None:
    product = await builders.product(catalog_stub)
    meter = await builders.meter(catalog_stub, dimensions=("channel",))
    bad = builders.graduated(product.name, meter.name, [("", "1", "0")], chanel="whatsapp")
    error = await failure(builders.price(catalog_stub, bad))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"price.usage.filters[0].key"}


async def test_a_plan_with_a_missing_price_is_not_found_and_nothing_is_created(catalog_stub: Stub) -> None:
    key = builders.unique("plan")
    error = await failure(
        catalog_stub.CreatePlan(
            pb.CreatePlanRequest(
                plan=pb.Plan(display_name="Broken", seat_price="prices/price_missing", lookup_key=key),
                request_id=request_id(),
            )
        )
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "plan.seat_price" in (error.details() or "")
    plans = await catalog_stub.ListPlans(pb.ListPlansRequest(page_size=1000, show_archived=True))
    assert key not in {p.lookup_key for p in plans.plans}


async def test_a_plan_mixing_currencies_is_invalid(catalog_stub: Stub) -> None:
    product = await builders.product(catalog_stub)
    meter = await builders.meter(catalog_stub)
    seat = await builders.price(catalog_stub, builders.per_unit(product.name, "100", currency="EUR"))
    usage = await builders.price(catalog_stub, builders.graduated(product.name, meter.name, [("", "1", "0")]))
    error = await failure(
        catalog_stub.CreatePlan(
            pb.CreatePlanRequest(
                plan=pb.Plan(display_name="Mixed", seat_price=seat.name, usage_prices=[usage.name]),
                request_id=request_id(),
            )
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "plan" in field_violations(error)


async def test_an_unknown_resource_is_not_found(catalog_stub: Stub) -> None:
    error = await failure(catalog_stub.GetPrice(pb.GetPriceRequest(name="prices/price_nope")))
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_a_malformed_resource_name_is_invalid(catalog_stub: Stub) -> None:
    error = await failure(catalog_stub.GetPrice(pb.GetPriceRequest(name="products/prod_1")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"name"}
