"""Catalog use cases against in-memory fakes: versioning, references, plan rules."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from billing.domain.catalog import (
    AddOn,
    Aggregation,
    Interval,
    Meter,
    Plan,
    Price,
    Product,
    Recurring,
    UsageBinding,
)
from billing.domain.errors import InvalidArgument, NotFound
from billing.domain.pricing import PerUnit
from rating.usecases import catalog
from tests.unit.usecases.fakes import FakeState, FakeUnitOfWork

MONTHLY = Recurring(Interval.MONTH)


@pytest.fixture
async def uow() -> FakeUnitOfWork:
    unit = FakeUnitOfWork(FakeState())
    return await unit.__aenter__()


async def _product(uow: FakeUnitOfWork) -> Product:
    return await catalog.create_product(uow, Product("", "Seats"))


def _price(product_id: str, amount: str, **fields: object) -> Price:
    return Price("", product_id, "USD", PerUnit(D(amount)), MONTHLY, **fields)  # type: ignore[arg-type]


async def test_a_created_price_gets_an_id_and_version_one(uow: FakeUnitOfWork) -> None:
    product = await _product(uow)
    price = await catalog.create_price(uow, _price(product.id, "100"))
    assert price.id.startswith("price_")
    assert price.version == 1


async def test_a_superseding_price_is_one_version_higher_and_can_take_the_lookup_key(
    uow: FakeUnitOfWork,
) -> None:
    product = await _product(uow)
    first = await catalog.create_price(uow, _price(product.id, "100", lookup_key="seat"))
    second = await catalog.create_price(
        uow, _price(product.id, "120", lookup_key="seat", supersedes=first.id), transfer_lookup_key=True
    )
    assert second.version == 2
    assert (await uow.entities.get(Price, first.id)).lookup_key is None


async def test_a_new_version_must_keep_the_product_and_currency(uow: FakeUnitOfWork) -> None:
    product = await _product(uow)
    other = await catalog.create_product(uow, Product("", "Other"))
    first = await catalog.create_price(uow, _price(product.id, "100"))
    with pytest.raises(InvalidArgument) as caught:
        await catalog.create_price(uow, _price(other.id, "120", supersedes=first.id))
    assert [v.field for v in caught.value.violations] == ["price.supersedes"]


async def test_a_price_for_a_missing_product_is_not_found_naming_the_field(uow: FakeUnitOfWork) -> None:
    with pytest.raises(NotFound, match=r"price\.product"):
        await catalog.create_price(uow, _price("prod_missing", "1"))


async def test_a_usage_price_needs_an_interval_and_known_dimensions(uow: FakeUnitOfWork) -> None:
    product = await _product(uow)
    meter = await catalog.create_meter(uow, Meter("", "msg", "Messages", Aggregation.COUNT, "", ("channel",)))
    bad = Price("", product.id, "USD", PerUnit(D(1)), None, UsageBinding(meter.id, (("chanel", "sms"),)))
    with pytest.raises(InvalidArgument) as caught:
        await catalog.create_price(uow, bad)
    assert {v.field for v in caught.value.violations} == {"price.recurring", "price.usage.filters[0].key"}


async def test_a_plan_takes_the_currency_of_its_prices(uow: FakeUnitOfWork) -> None:
    product = await _product(uow)
    seat = await catalog.create_price(uow, _price(product.id, "100"))
    plan = await catalog.create_plan(uow, Plan("", "Basic", seat.id))
    assert plan.currency == "USD"


async def test_a_plan_with_a_usage_price_as_seat_price_is_invalid(uow: FakeUnitOfWork) -> None:
    product = await _product(uow)
    meter = await catalog.create_meter(uow, Meter("", "msg", "Messages", Aggregation.COUNT))
    usage = await catalog.create_price(
        uow, Price("", product.id, "USD", PerUnit(D(1)), MONTHLY, UsageBinding(meter.id))
    )
    with pytest.raises(InvalidArgument) as caught:
        await catalog.create_plan(uow, Plan("", "Odd", usage.id, (usage.id,)))
    assert [v.field for v in caught.value.violations] == ["plan.seat_price"]


async def test_an_addon_needs_a_recurring_price(uow: FakeUnitOfWork) -> None:
    product = await _product(uow)
    one_time = await catalog.create_price(uow, Price("", product.id, "USD", PerUnit(D(1))))
    with pytest.raises(InvalidArgument):
        await catalog.create_addon(uow, AddOn("", "Setup", one_time.id))


async def test_archive_keeps_the_entity_but_hides_it_from_sale(uow: FakeUnitOfWork) -> None:
    product = await _product(uow)
    archived = await catalog.archive(uow, Product, product.id)
    assert not archived.active
    assert await uow.entities.list(Product, after=None, limit=10) == []
    assert await uow.entities.list(Product, after=None, limit=10, show_archived=True) == [archived]
