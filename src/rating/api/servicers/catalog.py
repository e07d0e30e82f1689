"""CatalogService: five calls per resource, built from one description of each resource.

Every resource has the same Create/Get/List/Update/Archive shape, so the methods are made by
the factories below from a ``Resource`` entry instead of being written out thirty times.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from billing.domain.catalog import AddOn, Coupon, Meter, Plan, Price, Product
from billing.v1 import catalog_pb2 as pb
from rating.api.converters import catalog as convert
from rating.api.converters.resources import parse_name
from rating.api.errors import translate_errors
from rating.api.pagination import next_token, page_of
from rating.api.servicers._support import Dependencies, mutate, read
from rating.usecases import catalog
from rating.usecases.ports import UnitOfWork

Create = Callable[[UnitOfWork, Any, Any], Awaitable[Any]]


@dataclass(frozen=True)
class Resource:
    kind: type[Any]
    message: str  # "Product": names the request and response messages
    field: str  # "product": the resource's field in those messages
    plural: str  # "products": the repeated field of the List response
    collection: str  # "products": the resource-name collection
    from_proto: Callable[..., Any]
    to_proto: Callable[[Any], Any]
    create: Create
    mask: Mapping[str, str]
    list_filters: Callable[[Any], dict[str, object]] = lambda request: {}


def _create_price(uow: UnitOfWork, price: Price, request: pb.CreatePriceRequest) -> Awaitable[Price]:
    return catalog.create_price(uow, price, transfer_lookup_key=request.transfer_lookup_key)


def _price_filters(request: pb.ListPricesRequest) -> dict[str, object]:
    filters: dict[str, object] = {}
    if request.product:
        filters["product_id"] = parse_name(request.product, "products", "product")
    if request.lookup_key:
        filters["lookup_key"] = request.lookup_key
    return filters


RESOURCES = (
    Resource(
        Product,
        "Product",
        "product",
        "products",
        "products",
        convert.product_from_proto,
        convert.product_to_proto,
        lambda uow, p, _: catalog.create_product(uow, p),
        convert.PRODUCT_MASK,
    ),
    Resource(
        Meter,
        "Meter",
        "meter",
        "meters",
        "meters",
        convert.meter_from_proto,
        convert.meter_to_proto,
        lambda uow, m, _: catalog.create_meter(uow, m),
        convert.METER_MASK,
    ),
    Resource(
        Price,
        "Price",
        "price",
        "prices",
        "prices",
        convert.price_from_proto,
        convert.price_to_proto,
        _create_price,
        convert.PRICE_MASK,
        _price_filters,
    ),
    Resource(
        Plan,
        "Plan",
        "plan",
        "plans",
        "plans",
        convert.plan_from_proto,
        convert.plan_to_proto,
        lambda uow, p, _: catalog.create_plan(uow, p),
        convert.PLAN_MASK,
    ),
    Resource(
        AddOn,
        "AddOn",
        "add_on",
        "add_ons",
        "addons",
        convert.addon_from_proto,
        convert.addon_to_proto,
        lambda uow, a, _: catalog.create_addon(uow, a),
        convert.ADDON_MASK,
    ),
    Resource(
        Coupon,
        "Coupon",
        "coupon",
        "coupons",
        "coupons",
        convert.coupon_from_proto,
        convert.coupon_to_proto,
        lambda uow, c, _: catalog.create_coupon(uow, c),
        convert.COUPON_MASK,
    ),
)


def _response(resource: Resource, verb: str) -> Any:
    return getattr(pb, f"{verb}{resource.message}Response")


def _create_method(r: Resource) -> Any:
    response = _response(r, "Create")

    async def method(self: CatalogServicer, request: Any, context: Any) -> Any:
        entity = r.from_proto(getattr(request, r.field), r.field)

        async def build(uow: UnitOfWork) -> Any:
            return response(**{r.field: r.to_proto(await r.create(uow, entity, request))})

        return await mutate(self.deps, f"Create{r.message}", request, response, build)

    return method


def _get_method(r: Resource) -> Any:
    response = _response(r, "Get")

    async def method(self: CatalogServicer, request: Any, context: Any) -> Any:
        entity_id = parse_name(request.name, r.collection, "name")

        async def query(uow: UnitOfWork) -> Any:
            return response(**{r.field: r.to_proto(await uow.entities.get(r.kind, entity_id))})

        return await read(self.deps, query)

    return method


def _list_method(r: Resource) -> Any:
    response = getattr(pb, f"List{r.message}sResponse")

    async def method(self: CatalogServicer, request: Any, context: Any) -> Any:
        after, size = page_of(request)
        filters = r.list_filters(request)

        async def query(uow: UnitOfWork) -> Any:
            items = await uow.entities.list(
                r.kind, after=after, limit=size + 1, show_archived=request.show_archived, where=filters
            )
            return response(
                **{r.plural: [r.to_proto(item) for item in items[:size]]},
                next_page_token=next_token(items, size),
            )

        return await read(self.deps, query)

    return method


def _update_method(r: Resource) -> Any:
    response = _response(r, "Update")

    async def method(self: CatalogServicer, request: Any, context: Any) -> Any:
        message = getattr(request, r.field)
        entity_id = parse_name(message.name, r.collection, f"{r.field}.name")
        changes = convert.changes_from_mask(message, request.update_mask.paths, r.mask, r.field)
        transfer = getattr(request, "transfer_lookup_key", False)

        async def build(uow: UnitOfWork) -> Any:
            updated = await catalog.update(uow, r.kind, entity_id, changes, transfer_lookup_key=transfer)
            return response(**{r.field: r.to_proto(updated)})

        return await mutate(self.deps, f"Update{r.message}", request, response, build)

    return method


def _archive_method(r: Resource) -> Any:
    response = _response(r, "Archive")

    async def method(self: CatalogServicer, request: Any, context: Any) -> Any:
        entity_id = parse_name(request.name, r.collection, "name")

        async def build(uow: UnitOfWork) -> Any:
            return response(**{r.field: r.to_proto(await catalog.archive(uow, r.kind, entity_id))})

        return await mutate(self.deps, f"Archive{r.message}", request, response, build)

    return method


class CatalogServicer:
    def __init__(self, deps: Dependencies) -> None:
        self.deps = deps


def _install(name: str, method: Any) -> None:
    method.__name__ = method.__qualname__ = name
    setattr(CatalogServicer, name, translate_errors(method))


_FACTORIES = {
    "Create": _create_method,
    "Get": _get_method,
    "Update": _update_method,
    "Archive": _archive_method,
}

for _resource in RESOURCES:
    for _verb, _factory in _FACTORIES.items():
        _install(f"{_verb}{_resource.message}", _factory(_resource))
    _install(f"List{_resource.message}s", _list_method(_resource))
