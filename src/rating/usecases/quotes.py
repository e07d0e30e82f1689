"""The live quote use case: the hot path of the rating service."""

from __future__ import annotations

from datetime import datetime

from billing.domain.customer import Customer
from billing.domain.errors import NotFound
from billing.domain.quote import Quote, QuoteRequest, price_quote
from rating.usecases.ports import CatalogSource, UnitOfWorkFactory


async def currency_of_customer(unit_of_work: UnitOfWorkFactory, customer_id: str) -> str:
    """The quote currency for a customer: one primary-key read, the only I/O of a quote."""
    async with unit_of_work() as uow:
        try:
            customer = await uow.entities.get(Customer, customer_id)
        except NotFound as error:
            raise NotFound(f"customer: {error.message}") from None
    return customer.currency


def quote(catalog: CatalogSource, request: QuoteRequest, as_of: datetime) -> Quote:
    """Price a cart against the current snapshot; the snapshot is read once, so never mixed."""
    return price_quote(request, catalog.current(), as_of)
